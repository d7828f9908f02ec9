# The retrieval service. CPU build by default; the CUDA build takes torch from PyPI, whose Linux wheels bundle
# CUDA:  docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t audio-text-retrieval:cuda .
# Weights are not in the image: `retrieval models fetch` puts them in the /models volume (docker-compose.yml
# runs it once, as the `models` service, before the API starts); the running service never downloads.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# dependencies first, from pyproject.toml alone: this layer is rebuilt only when a pin changes
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt
RUN grep -E '^torch(audio|vision)?==' requirements.txt > torch.txt && pip install --index-url "$TORCH_INDEX_URL" -r torch.txt
RUN pip install -r requirements.txt
# then the code: a change here reinstalls only the project itself
COPY . .
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 app && mkdir -p /data /models /backups && chown app:app /data /models /backups
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    RETRIEVAL_DATA_DIR=/data RETRIEVAL_MODELS_DIR=/models \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
USER app
WORKDIR /home/app
VOLUME ["/data", "/models"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
CMD ["retrieval", "serve", "--host", "0.0.0.0", "--port", "8000"]
