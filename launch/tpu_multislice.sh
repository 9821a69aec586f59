#!/bin/bash
# unified_mm on ${num_slices} Cloud TPU slices joined over DCN: rendered by
# `umm launch --target tpu-pod --num-slices N` from launch/tpu_multislice.sh.
# The slices come from one queued resource; the TPU runtime sets MEGASCALE_*
# on every worker, and the config's mesh.dcn_data=${num_slices} puts the data
# axis across slices (a hybrid mesh, DCN outermost).
set -euo pipefail

# create (only with --create): ${num_slices} x ${accelerator_type} as one queued resource
if [[ "${create}" == 1 ]]; then
  gcloud compute tpus queued-resources create ${name} --zone=${zone} ${project_flag} \
    --accelerator-type=${accelerator_type} --runtime-version=${runtime_version} \
    --node-count=${num_slices} --node-prefix=${name}
fi

# setup: copy this source tree to every worker of every slice, install it with [tpu]
tar -czf ${bundle} -C ${source} --exclude=./.venv --exclude=./.git .
for i in $$(seq 0 ${last_slice}); do
  gcloud compute tpus tpu-vm scp ${bundle} ${name}-$${i}:umm_src.tgz --worker=all --zone=${zone} ${project_flag}
done
gcloud compute tpus queued-resources ssh ${name} --node=all --worker=all --zone=${zone} ${project_flag} \
  --command=${install_command}

# run: the same `umm ${umm_command}` on all ${hosts} worker(s) of all slices
gcloud compute tpus queued-resources ssh ${name} --node=all --worker=all --zone=${zone} ${project_flag} \
  --command=${run_command}
