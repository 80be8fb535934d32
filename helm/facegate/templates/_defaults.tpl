{{/*
Defaults of the keys added to values.yaml after chart 0.1.0, for `helm upgrade --reuse-values`:
that flag renders the new templates with the OLD chart's values.yaml, so a key added since is
missing (a nil map: "nil pointer evaluating"). Every template starts with
`include "facegate.defaults" .`, which adds each missing key with its default here; a key that
is present (null and false included) is left alone. tests/deploy/test_helm_day2.py checks that
this block equals values.yaml and that every key of values.yaml is either in the 0.1.0 values
or here: add a new key to both.
*/}}
{{- define "facegate.defaultsSince010" -}}
gallery:
  enabled: false
  existingSecret: ""
  secretKey: url
  poolSize: 8
  timeoutSeconds: null
  statementTimeoutSeconds: null
  migrate: true
  efSearch: null
  postgres:
    enabled: false
    image:
      repository: pgvector/pgvector
      tag: 0.8.0-pg17
      pullPolicy: IfNotPresent
    storageSize: 20Gi
    storageClassName: ""
    sharedBuffers: 1GB
    shmSize: 1Gi
    resources:
      requests:
        cpu: 500m
        memory: 1Gi
      limits:
        memory: 4Gi
gateway:
  auth:
    disabled: false
  compat:
    protocols: []
    networks: []
    imagesDir: ""
    urlHosts: []
    maxImages: null
    maxRequestBytes: null
    immichModels: []
    immichPrefix: ""
  corsOrigins: []
  drainSeconds: 5
  extraVolumeMounts: []
  extraVolumes: []
  limits:
    maxImageBytes: null
    maxImagePixels: null
    maxBatchImages: null
  maxInFlight: null
  maxInFlightPerKey: null
  keyRateLimits: ""
  bodyTimeoutSeconds: null
  audit:
    table: false
    retentionDays: null
  requestTimeoutSeconds: 60
  swapper:
    preload: false
    idleTtlSeconds: null
    waitSeconds: null
models:
  optional:
    genderage: true
    liveness: true
    landmark_2d_106: true
    landmark_3d_68: true
    faces: false
  fetch:
    fixOwnership: false
triton:
  entrypoint: /opt/nvidia/nvidia_entrypoint.sh
  tensorrt:
    swapperLoadTimeoutSeconds: 1800
{{- end }}

{{/*
Add each key of .src missing from .dst (recursively into maps present in both); never replaces
a value that is there, unlike sprig's merge, which overwrites false, 0 and "".
*/}}
{{- define "facegate.fillMissing" -}}
{{- $dst := .dst }}
{{- range $key, $value := .src }}
{{- if not (hasKey $dst $key) }}
{{- $_ := set $dst $key $value }}
{{- else if and (kindIs "map" $value) (kindIs "map" (index $dst $key)) }}
{{- include "facegate.fillMissing" (dict "dst" (index $dst $key) "src" $value) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Fill the keys added after 0.1.0 into .Values (once per render; idempotent).
*/}}
{{- define "facegate.defaults" -}}
{{- include "facegate.fillMissing" (dict "dst" .Values "src" (include "facegate.defaultsSince010" . | fromYaml)) }}
{{- end }}
