# ari-amd: the ARI application, as a container.
#   docker build -t ari-amd .
#   docker run --network host ari-amd            # next to an Asterisk whose ARI is on 127.0.0.1:8088
# docker-compose.yml runs it with Asterisk 22 and a SIPp callee, sharing one loopback.
FROM python:3.11-slim

# soundfile's wheel bundles libsndfile; the system library is the fallback on other platforms.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsndfile1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ari_amd ./ari_amd
# [fast]: uvloop, the event loop that takes in several times more RTP per core.
RUN pip install --no-cache-dir ".[fast]" \
 && useradd --system --home-dir /var/lib/ari-amd --create-home ari-amd

USER ari-amd
WORKDIR /var/lib/ari-amd
# The HTTP API (Twilio/Plivo/Telnyx dialects, health, metrics).
EXPOSE 8080
# Every call's RTP arrives on one UDP socket (rtp.socket = "shared", the first free port of
# rtp.port_first-port_last). As this unprivileged user its receive buffer is capped by the host's
# net.core.rmem_max: raise it to 16777216 for more than ~250 calls (see the README).
CMD ["ari-amd", "serve"]
