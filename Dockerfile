# koji-mcp for remote use: MCP over streamable HTTP on port 8000, bearer auth required, the ledger on a volume.
#
#   docker build -t koji-mcp .
#   docker run -d -p 8000:8000 -v koji-mcp-data:/data \
#     -e KOJI_API_KEY=pk_live_… -e KOJI_MCP_AUTH_TOKEN="alice=$(openssl rand -hex 32)" \
#     koji-mcp --allowed-host mcp.example.com --public-url https://mcp.example.com
#
# Without KOJI_MCP_AUTH_TOKEN (or --auth-token) the server refuses to start (exit 2): a container port is
# reachable from the network. Arguments after the image name are added to the `serve` command below.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KOJI_MCP_STATE_DIR=/data

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/koji koji \
    && mkdir -p /data \
    && chown koji:koji /data \
    && chmod 700 /data

# extras to install, e.g. --build-arg KOJI_MCP_EXTRAS="[postgres]" for KOJI_MCP_DATABASE_URL (compose.yaml does)
ARG KOJI_MCP_EXTRAS=""
WORKDIR /build
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install ".${KOJI_MCP_EXTRAS}" && rm -rf /build

USER koji
WORKDIR /home/koji
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["koji-mcp", "serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8000"]
CMD []
