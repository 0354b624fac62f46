# edgebuild in a container, installed exactly like `make install` (editable install with test extras),
# with edgebuild as the entry point:
#   docker build -t edgebuild .
#   docker run --rm -v "$PWD:/data" edgebuild --target mcu /data/model --data /data/calib.npz --out /data/build
# The Edge TPU compiler layer (Coral's apt repository, x86-64 only) is added by a later change.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      make gcc g++ gcc-arm-none-eabi libnewlib-arm-none-eabi \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/edgebuild
COPY pyproject.toml README.md Makefile ./
COPY src ./src
COPY converters ./converters
COPY targets ./targets
COPY scripts ./scripts
COPY examples ./examples
RUN make install PYTHON=python3.11

ENV PATH="/opt/edgebuild/.venv/bin:${PATH}"
WORKDIR /data
ENTRYPOINT ["edgebuild"]
CMD ["--help"]
