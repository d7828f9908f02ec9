"""The FastAPI service and its web page: thin routes over retrieval/ and index/."""
