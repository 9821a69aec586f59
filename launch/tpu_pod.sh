#!/bin/bash
# unified_mm on one Cloud TPU slice: rendered by `umm launch --target tpu-pod`
# from launch/tpu_pod.sh. Every worker (host) of the slice runs the same command;
# jax.distributed.initialize() finds the coordinator and the ranks in the TPU
# VM metadata (UMM_DISTRIBUTED=auto asks for that).
set -euo pipefail

# create (only with --create): one ${accelerator_type} slice
if [[ "${create}" == 1 ]]; then
  gcloud compute tpus tpu-vm create ${name} --zone=${zone} ${project_flag} \
    --accelerator-type=${accelerator_type} --version=${runtime_version}
fi

# setup: copy this source tree to every worker and install it with the [tpu] extra
tar -czf ${bundle} -C ${source} --exclude=./.venv --exclude=./.git .
gcloud compute tpus tpu-vm scp ${bundle} ${name}:umm_src.tgz --worker=all --zone=${zone} ${project_flag}
gcloud compute tpus tpu-vm ssh ${name} --worker=all --zone=${zone} ${project_flag} \
  --command=${install_command}

# run: the same `umm ${umm_command}` on all ${hosts} worker(s)
gcloud compute tpus tpu-vm ssh ${name} --worker=all --zone=${zone} ${project_flag} \
  --command=${run_command}
