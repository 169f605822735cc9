#!/usr/bin/env bash
# `make sam-local`: `sam local invoke` on every sample event and one `sam local start-lambda`
# invocation, on template.yaml as written, against the voice fake and moto on the Docker
# bridge. Needs a running Docker engine; builds the stand-in base image when it is missing
# (pass SAM_INVOKE_IMAGE to use another, such as AWS's own on a laptop). Nothing here leaves
# the machine: no pull, no telemetry, SAM CLI's version check answered from seeded metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
deploy_venv="${DEPLOY_VENV:-.venv-deploy}"
test_venv="${VENV:-.venv}"
image="${SAM_INVOKE_IMAGE:-voice-dispatch/provided-al2023-standin}"
case "$(uname -m)" in
  x86_64 | amd64) architecture=x86_64 ;;
  aarch64 | arm64) architecture=arm64 ;;
  *) echo "unknown architecture $(uname -m)" >&2; exit 1 ;;
esac

docker info >/dev/null 2>&1 || { echo "no Docker engine: start dockerd first" >&2; exit 1; }
docker image inspect "$image" >/dev/null 2>&1 || bash tools/standin-image.sh "$image"
# The bridge's own address on this machine: what containers reach it at.
bridge="$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}')"
if [ -z "$bridge" ]; then
  bridge="$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)"
fi

# SAM CLI checks PyPI for a newer version at most once a week: it finds a check made now.
export __SAM_CLI_APP_DIR="$root/target/sam-cli"
mkdir -p "$__SAM_CLI_APP_DIR"
python3 - "$__SAM_CLI_APP_DIR/metadata.json" <<'PY'
import json, sys, time, uuid
path = sys.argv[1]
try:
    data = json.load(open(path))
except (OSError, ValueError):
    data = {}
data.update({"installationId": data.get("installationId", str(uuid.uuid4())),
             "telemetryEnabled": False, "lastVersionCheck": time.time()})
json.dump(data, open(path, "w"))
PY
export SAM_CLI_TELEMETRY=0
# SAM CLI's botocore would otherwise look for credentials on the instance metadata service,
# and with credentials it asks STS for the account id: it gets neither, uses its default
# account id, and the function gets its credentials from the env-vars file.
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE

PATH="$root/$deploy_venv/bin:$PATH" sam build --parameter-overrides "Architecture=$architecture" >/dev/null

SAM="$root/$deploy_venv/bin/sam" \
SAM_PYTHON="$root/$test_venv/bin/python" \
SAM_INVOKE_IMAGE="$image" \
SAM_ARCHITECTURE="$architecture" \
SAM_BUILD_DIR="$root/.aws-sam/build" \
DOCKER_BRIDGE_IP="$bridge" \
MOTO_SERVER="$root/$test_venv/bin/moto_server" \
  cargo test --test integration sam_local -- --ignored --test-threads=1
