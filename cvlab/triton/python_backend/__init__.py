"""The python-backend ``model.py`` cvlab copies into model repositories (a real file)."""
