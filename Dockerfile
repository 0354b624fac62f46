# edgebuild in a container, installed exactly like `make install` (editable install with test extras),
# with edgebuild as the entry point:
#   docker build -t edgebuild .
#   docker run --rm -v "$PWD:/data" edgebuild --target mcu /data/model --data /data/calib.npz --out /data/build
# The Edge TPU compiler comes from Coral's own apt repository (x86-64 only); build with
# --build-arg EDGETPU_COMPILER=0 to leave it out (edgebuild then says so and uses its own rule check).
FROM python:3.11-slim-bookworm

ARG EDGETPU_COMPILER=1

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      make gcc g++ gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm openssh-client curl gnupg ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Coral's repository and key, then edgetpu-compiler (found on PATH by `edgebuild build --target edgetpu`).
RUN if [ "$EDGETPU_COMPILER" = "1" ] && [ "$(uname -m)" = "x86_64" ]; then \
      curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
        | gpg --dearmor -o /usr/share/keyrings/coral-edgetpu.gpg \
      && echo "deb [signed-by=/usr/share/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main" \
        > /etc/apt/sources.list.d/coral-edgetpu.list \
      && apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends edgetpu-compiler \
      && rm -rf /var/lib/apt/lists/*; \
    fi

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
