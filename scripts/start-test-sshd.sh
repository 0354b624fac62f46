#!/bin/sh
# Start a throwaway OpenSSH server on 127.0.0.1 that plays an SSH "device" for manual tries of
# `edgebuild bench --device`. Everything lives in DIR (default: a new temp dir): host key, user key,
# authorized_keys, sshd_config, known_hosts. Stop it with: kill "$(cat DIR/sshd.pid)".
#   scripts/start-test-sshd.sh [PORT] [DIR]
set -eu
PORT=${1:-2222}
DIR=${2:-$(mktemp -d "${TMPDIR:-/tmp}/edgebuild-sshd.XXXXXX")}
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || { echo "no sshd: install openssh-server (apt-get install -y openssh-server)" >&2; exit 1; }
mkdir -p "$DIR" "$DIR/device_tmp"
[ -f "$DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C edgebuild-test-host -f "$DIR/host_ed25519"
[ -f "$DIR/user_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C edgebuild-test-user -f "$DIR/user_ed25519"
cp "$DIR/user_ed25519.pub" "$DIR/authorized_keys"
chmod 600 "$DIR/authorized_keys"
SFTP=internal-sftp
[ -x /usr/lib/openssh/sftp-server ] && SFTP=/usr/lib/openssh/sftp-server
cat > "$DIR/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_ed25519
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp $SFTP
SetEnv TMPDIR=$DIR/device_tmp
CONF
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")" > "$DIR/known_hosts"
mkdir -p /run/sshd 2>/dev/null || true
"$SSHD" -f "$DIR/sshd_config" -E "$DIR/sshd.log"
echo "sshd on 127.0.0.1:$PORT, files in $DIR"
echo "try: edgebuild bench MODEL.tflite --device ssh://$(id -un)@127.0.0.1:$PORT --identity $DIR/user_ed25519 --known-hosts $DIR/known_hosts --device-python /path/to/venv/bin/python3"
