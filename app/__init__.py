"""The paretomerge dashboard (Streamlit + Altair): ``paretomerge dashboard`` runs ``app/main.py``.

``app.data`` reads studies into tables (no Streamlit), ``app.charts`` draws them with Altair,
``app.state`` holds the session's selection and caches, ``app.views`` are the pages.
"""

from pathlib import Path

MAIN = Path(__file__).with_name("main.py")
