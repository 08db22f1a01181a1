#!/usr/bin/env bash
# Install the Debian packages Socle runs for real, when they are missing.
#   ensure-system-packages.sh up    what `make up` needs: a JDK and Maven (Keycloak and its
#                                   provider); PostgreSQL is the pip-installed embedded server
#   ensure-system-packages.sh test  (default) what the suite needs as well: PostgreSQL server,
#                                   mosquitto (MQTT broker), Chromium (browser tests)
set -euo pipefail
profile="${1:-test}"
case "$profile" in up|test) ;; *) echo "usage: $0 [up|test]" >&2; exit 2 ;; esac
need=()
java_major() { java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }
major="$(command -v java >/dev/null 2>&1 && java_major || true)"
[ "${major:-0}" -ge 17 ] 2>/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ "$profile" = test ]; then
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
  command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "[socle] installing Debian packages: ${need[*]}" >&2
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the packaged servers; the project runs its own instances on free ports.
for svc in postgresql mosquitto; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
