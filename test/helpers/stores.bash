# Object stores for tests, on 127.0.0.1 only, started and stopped by pid: Azurite's blob service and
# s3rver (an S3-compatible server), both from npm.
#   cm_azurite_start DIR [PORT]   sets CM_AZURITE_PID, CM_AZURITE_PORT, AZURE_STORAGE_CONNECTION_STRING
#   cm_azurite_stop [SIGNAL]      (KILL: the store going away mid-upload)
#   cm_s3_start DIR BUCKET        sets CM_S3_PID and the AWS_* variables the SDK reads
#   cm_s3_stop

# the emulator's published development account (Azurite's documentation): not a secret
CM_AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

cm_azurite_start() {
  local dir=$1 port=${2:-0}
  mkdir -p "$dir"
  : >"$dir/log"
  # --disableTelemetry: no traffic leaves the loopback
  azurite-blob --blobHost 127.0.0.1 --blobPort "$port" --location "$dir" --silent --skipApiVersionCheck --loose \
    --disableTelemetry >"$dir/log" 2>&1 3>&- &
  CM_AZURITE_PID=$!
  wait_for 60 grep -q 'listens on http://127.0.0.1:' "$dir/log" || {
    cat "$dir/log" >&2
    return 1
  }
  CM_AZURITE_PORT=$(sed -n 's|.*listens on http://127.0.0.1:\([0-9]*\).*|\1|p' "$dir/log" | head -1)
  export CM_AZURITE_PID CM_AZURITE_PORT
  export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$CM_AZURITE_KEY;BlobEndpoint=http://127.0.0.1:$CM_AZURITE_PORT/devstoreaccount1;"
}

cm_azurite_stop() {
  [[ -n ${CM_AZURITE_PID:-} ]] || return 0
  kill "-${1:-TERM}" "$CM_AZURITE_PID" 2>/dev/null
  wait "$CM_AZURITE_PID" 2>/dev/null || true
  CM_AZURITE_PID=
}

cm_s3_start() {
  local dir=$1 bucket=$2
  mkdir -p "$dir"
  s3rver -d "$dir" -a 127.0.0.1 -p 0 --configure-bucket "$bucket" >"$dir.log" 2>&1 3>&- &
  CM_S3_PID=$!
  wait_for 60 grep -q 'listening on 127.0.0.1:' "$dir.log" || {
    cat "$dir.log" >&2
    return 1
  }
  local port
  port=$(sed -n 's|.*listening on 127.0.0.1:\([0-9]*\).*|\1|p' "$dir.log" | head -1)
  # s3rver's own fixed test account (its documentation): not a secret
  export CM_S3_PID AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
  # the SDK must not look for credentials or regions beyond these (no ~/.aws, no instance metadata)
  export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
}

cm_s3_stop() {
  [[ -n ${CM_S3_PID:-} ]] || return 0
  kill "$CM_S3_PID" 2>/dev/null
  wait "$CM_S3_PID" 2>/dev/null || true
  CM_S3_PID=
}

# cm_blobs CONTAINER: every blob name in the container, straight from the SDK (not through cm-fetch)
cm_blobs() {
  node -e '
    const { BlobServiceClient } = require(process.argv[1]);
    (async () => {
      const c = BlobServiceClient.fromConnectionString(process.env.AZURE_STORAGE_CONNECTION_STRING).getContainerClient(process.argv[2]);
      if (!(await c.exists())) return;
      for await (const b of c.listBlobsFlat()) console.log(b.name);
    })().catch((e) => { console.error(e.message); process.exit(1); });
  ' "$CM_REPO/node_modules/@azure/storage-blob" "$1"
}

# cm_azurite_bytes_over DIR N: Azurite in DIR holds more than N bytes of blob data (for wait_for)
cm_azurite_bytes_over() {
  (($(du -sb "$1/__blobstorage__" 2>/dev/null | cut -f1) > $2))
}
