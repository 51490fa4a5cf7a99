"""`nlp-lstm serve`: both models over HTTP, with TF Serving's REST API.

models.py    what the server holds: a model folder or an export's newest version, with its signatures
rest.py      TF Serving's request and response formats (row and columnar), every error a RequestError
batching.py  concurrent requests batched into one model call, in a worker thread
app.py       the Starlette app: status, metadata, :predict
"""
