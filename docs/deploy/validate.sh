#!/usr/bin/env bash
# Checks the manifests here against the Kubernetes API schemas, strictly (unknown
# fields are errors), for the oldest and newest Kubernetes we claim. The
# validator (kubernetes-validate, from PyPI) bundles the schemas: after its
# install nothing is fetched, no cluster is needed.
set -euo pipefail
cd "$(dirname "$0")"
venv=${KUBERNETES_VALIDATE_VENV:-/tmp/buildd-kubernetes-validate}
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'kubernetes-validate==1.37.0'
fi
for version in 1.29.0 1.37.0; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" daemon.yaml job.yaml
    echo "validate: daemon.yaml job.yaml pass Kubernetes $version (strict)"
done
