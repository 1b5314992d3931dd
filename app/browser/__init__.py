"""Patient/study/series browser: tree, thumbnails, indexing and decoding workers, drag-and-drop."""

from app.browser.dnd import local_paths
from app.browser.indexer import IndexController
from app.browser.loader import ImageLoader
from app.browser.thumbnails import ThumbnailLoader, make_thumbnail
from app.browser.tree import BrowserPanel

__all__ = ["BrowserPanel", "ImageLoader", "IndexController", "ThumbnailLoader", "local_paths", "make_thumbnail"]
