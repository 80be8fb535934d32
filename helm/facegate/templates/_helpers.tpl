{{/*
Chart name, truncated to a DNS label.
*/}}
{{- define "facegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart>, or the release name when it already contains the
chart name. Truncated to 50 characters so the component suffixes below stay within 63.
*/}}
{{- define "facegate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "facegate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "facegate.labels" -}}
helm.sh/chart: {{ include "facegate.chart" . }}
{{ include "facegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: facegate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels shared by every component.
*/}}
{{- define "facegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "facegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-component names, labels and selectors. Call with (dict "root" $ "component" "triton").
*/}}
{{- define "facegate.componentName" -}}
{{- printf "%s-%s" (include "facegate.fullname" .root) .component }}
{{- end }}

{{- define "facegate.componentLabels" -}}
{{ include "facegate.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of pod templates that Kubernetes will not change after creation (the Jobs') or whose
change restarts pods (Triton, the gateway, the bundled PostgreSQL): no chart version and no app
version, which every upgrade changes.
*/}}
{{- define "facegate.podTemplateLabels" -}}
{{ include "facegate.componentSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: facegate
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "facegate.componentSelectorLabels" -}}
{{ include "facegate.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Service account names.
*/}}
{{- define "facegate.triton.serviceAccountName" -}}
{{- if .Values.triton.serviceAccount.create }}
{{- default (include "facegate.componentName" (dict "root" . "component" "triton")) .Values.triton.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.triton.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "facegate.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "facegate.componentName" (dict "root" . "component" "gateway")) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Images.
*/}}
{{- define "facegate.triton.image" -}}
{{- printf "%s:%s" .Values.triton.image.repository .Values.triton.image.tag }}
{{- end }}

{{- define "facegate.gateway.image" -}}
{{- printf "%s:%s" .Values.gateway.image.repository (default .Chart.AppVersion .Values.gateway.image.tag) }}
{{- end }}

{{/*
Secret holding the key that unlocks Triton's model-repository API.
*/}}
{{- define "facegate.repositoryKey.secretName" -}}
{{- default (include "facegate.componentName" (dict "root" . "component" "repository-key")) .Values.triton.repositoryKey.existingSecret }}
{{- end }}

{{/*
Secret holding the gateway's API keys file (not used when gateway.auth.disabled).
*/}}
{{- define "facegate.apiKeys.secretName" -}}
{{- default (include "facegate.componentName" (dict "root" . "component" "api-keys")) .Values.gateway.apiKeys.existingSecret }}
{{- end }}

{{/*
Model repository claim (models.source=claim).
*/}}
{{- define "facegate.models.claimName" -}}
{{- default (include "facegate.componentName" (dict "root" . "component" "models")) .Values.models.claim.existingClaim }}
{{- end }}

{{- define "facegate.tensorrt.claimName" -}}
{{- default (include "facegate.componentName" (dict "root" . "component" "tensorrt-cache")) .Values.triton.tensorrt.cache.existingClaim }}
{{- end }}

{{/*
Triton's --model-repository: the mounted claim or the object-store URL.
*/}}
{{- define "facegate.models.repository" -}}
{{- if eq .Values.models.source "objectStore" }}
{{- required "models.objectStore.url is required when models.source=objectStore" .Values.models.objectStore.url }}
{{- else }}
{{- .Values.models.mountPath }}
{{- end }}
{{- end }}

{{/*
Custom model config (--model-config-name): configs/cpu.pbtxt without GPUs,
configs/tensorrt.pbtxt with the TensorRT accelerator, config.pbtxt otherwise.
*/}}
{{- define "facegate.triton.modelConfigName" -}}
{{- if not .Values.triton.gpu.enabled }}
{{- "cpu" }}
{{- else if .Values.triton.tensorrt.enabled }}
{{- "tensorrt" }}
{{- end }}
{{- end }}

{{/*
Detector frame sizes configs/tensorrt.pbtxt warms the detector up with (gateway/ops/repository/
configs.py's WARMUP_FRAME_SIZES_PX; a test pins them): the only sizes the gateway serves with
TensorRT on.
*/}}
{{- define "facegate.tensorrt.warmedDetSizes" -}}
128,640
{{- end }}

{{/*
Service names.
*/}}
{{- define "facegate.triton.serviceName" -}}
{{- include "facegate.componentName" (dict "root" . "component" "triton") }}
{{- end }}

{{- define "facegate.triton.headlessServiceName" -}}
{{- include "facegate.componentName" (dict "root" . "component" "triton-headless") }}
{{- end }}

{{- define "facegate.gateway.serviceName" -}}
{{- include "facegate.componentName" (dict "root" . "component" "gateway") }}
{{- end }}

{{/*
Triton gRPC address the gateway dials. The headless Service resolves to every ready Triton
pod; the dns:/// scheme makes gRPC resolve all of them (not just the first), so the gateway's
round_robin policy spreads calls over the pods and its swapper load/unload reach each one.
*/}}
{{- define "facegate.gateway.tritonUrl" -}}
{{- if .Values.gateway.tritonUrl }}
{{- .Values.gateway.tritonUrl }}
{{- else if .Values.triton.headlessService.enabled }}
{{- printf "dns:///%s.%s.svc:%d" (include "facegate.triton.headlessServiceName" .) .Release.Namespace (int .Values.triton.service.grpcPort) }}
{{- else }}
{{- printf "%s.%s.svc:%d" (include "facegate.triton.serviceName" .) .Release.Namespace (int .Values.triton.service.grpcPort) }}
{{- end }}
{{- end }}

{{/*
Short hash of what decides the files a fetch writes: the fetch settings that reach the facegate
command and the image that runs it. Not how the fetch runs (resources, retries, deadline,
fixOwnership, the download token), so changing those downloads nothing again. "layout" counts
changes to what a fetch writes (2: the liveness addon, and the Job's completion marker): a
claim filled by a chart before that is fetched again.
*/}}
{{- define "facegate.models.fetchHash" -}}
{{- $fetch := pick .Values.models.fetch "mode" "pack" "swapper" "source" "syntheticProfile" "extraArgs" }}
{{- dict "fetch" $fetch "image" (include "facegate.gateway.image" .) "layout" 2 | toJson | sha256sum | trunc 8 }}
{{- end }}

{{/*
The hash chart 0.1.0 named their marker with: every models.fetch key 0.1.0 had,
resources and retries included. A claim carrying it holds the same files, so the fetch adopts
it instead of downloading again (upgrades from those charts).
*/}}
{{- define "facegate.models.fetchHash010" -}}
{{- $fetch := pick .Values.models.fetch "enabled" "mode" "pack" "swapper" "source" "syntheticProfile" "extraArgs" "envFromSecret" "backoffLimit" "activeDeadlineSeconds" "resources" }}
{{- dict "fetch" $fetch "image" (include "facegate.gateway.image" .) "layout" 2 | toJson | sha256sum | trunc 8 }}
{{- end }}

{{/*
The fetch Job's name: a hash of its whole pod template (see models-job.yaml).
*/}}
{{- define "facegate.models.jobName" -}}
{{- include "facegate.componentName" (dict "root" . "component" "models") }}-{{ include "facegate.models.jobPodTemplate" . | sha256sum | trunc 8 }}
{{- end }}

{{/*
The file a finished fetch leaves in the claim (named after the fetch settings): the fetch skips
its work when it is there, and Triton waits for it when a Job fills the claim, so Triton never
starts while the Job still writes the optional models.
*/}}
{{- define "facegate.models.fetchMarker" -}}
{{- printf "%s/.facegate-fetched-%s" .Values.models.mountPath (include "facegate.models.fetchHash" .) }}
{{- end }}

{{/*
The shell script around the fetch command ("$@"), for the fetch Job and the init container.
*/}}
{{- define "facegate.models.fetchScript" -}}
marker="{{ include "facegate.models.fetchMarker" . }}"; old="{{ .Values.models.mountPath }}/.facegate-fetched-{{ include "facegate.models.fetchHash010" . }}"; if [ -f "$old" ] && [ ! -f "$marker" ]; then echo "models fetched by an earlier chart ($old): kept"; touch "$marker" || exit 1; fi; if [ -f "$marker" ]; then echo "models already fetched ($marker)"; exit 0; fi; if ! [ -w "{{ .Values.models.mountPath }}" ]; then echo "facegate: {{ .Values.models.mountPath }} is not writable by uid $(id -u): the volume ignores fsGroup (NFS, Filestore, CephFS): set models.fetch.fixOwnership=true, or a CSIDriver fsGroupPolicy of File (docs/DEPLOY.md, day 2)" >&2; exit 1; fi; "$@" && touch "$marker"
{{- end }}

{{/*
How long Triton's wait-for-models waits for the fetch Job before it fails (and the pod's init
restarts it with a back-off, visibly): the Job's own deadline plus time for it to be scheduled
and pull its image.
*/}}
{{- define "facegate.models.waitTimeoutSeconds" -}}
{{- add (int .Values.models.fetch.activeDeadlineSeconds) 600 }}
{{- end }}

{{/*
The optional models Triton loads at start (models.optional), space-separated, in the order of
gateway/triton/spec.py's OPTIONAL_STARTUP_MODELS.
*/}}
{{- define "facegate.triton.optionalModels" -}}
{{- $names := list }}
{{- range $name := list "genderage" "liveness" "landmark_2d_106" "landmark_3d_68" "faces" }}
{{- if index $.Values.models.optional $name }}
{{- $names = append $names $name }}
{{- end }}
{{- end }}
{{- join " " $names }}
{{- end }}

{{/*
Triton's start script on a claim: each enabled optional model is loaded (--load-model, appended
to the arguments "$@") only when the repository holds its model file and config, as the
embedded `facegate serve` does; tritonserver exits at start when a --load-model is missing.
*/}}
{{- define "facegate.triton.startScript" -}}
{{- $dir := .Values.models.mountPath -}}
for model in {{ include "facegate.triton.optionalModels" . }}; do if { [ -r "{{ $dir }}/$model/1/model.onnx" ] || [ -r "{{ $dir }}/$model/1/model.py" ]; } && [ -r "{{ $dir }}/$model/config.pbtxt" ]; then set -- "$@" "--load-model=$model"; else echo "facegate: no $model model in {{ $dir }}: not loaded; its requests answer 503"; fi; done; exec tritonserver "$@"
{{- end }}

{{/*
Triton's postStart hook with an object-store repository: wait until Triton is live (as long as
the startup probe would), then ask it to load each enabled optional model, each answer awaited
as long again at most (a TensorRT load builds engines). Every read is bounded: a Triton that
accepts and never answers cannot hold the hook (and with it the container) for ever. Always
exits 0: a failed hook would kill the container, and a missing optional model must not.
*/}}
{{- define "facegate.triton.loadOptionalScript" -}}
{{- $port := .Values.triton.service.httpPort -}}
{{- $window := mul .Values.triton.startupProbe.periodSeconds .Values.triton.startupProbe.failureThreshold | int -}}
deadline=$((SECONDS + {{ $window }})); until (exec 3<>/dev/tcp/127.0.0.1/{{ $port }} && printf 'GET /v2/health/live HTTP/1.0\r\n\r\n' >&3 && read -t 5 -r line <&3 && [[ $line == *" 200 "* ]]) 2>/dev/null; do if [ $SECONDS -ge $deadline ]; then echo "facegate: Triton not live after {{ $window }}s: optional models not loaded"; exit 0; fi; sleep 1; done; for model in {{ include "facegate.triton.optionalModels" . }}; do (exec 3<>/dev/tcp/127.0.0.1/{{ $port }} && printf 'POST /v2/repository/models/%s/load HTTP/1.0\r\nfacegate-repository-key: %s\r\nContent-Length: 0\r\n\r\n' "$model" "$FACEGATE_TRITON_REPOSITORY_KEY" >&3 && if read -t {{ $window }} -r line <&3; then echo "facegate: load $model: ${line%$'\r'}"; else echo "facegate: load $model: no answer in {{ $window }}s: gave up"; fi) || echo "facegate: load $model failed"; done; exit 0
{{- end }}

{{/*
"true" when the model claim can be mounted by pods on several nodes (ReadWriteMany or
ReadOnlyMany); models.claim.accessModes also declares the modes of an existing claim.
*/}}
{{- define "facegate.models.claimIsShared" -}}
{{- $modes := .Values.models.claim.accessModes }}
{{- if or (has "ReadWriteMany" $modes) (has "ReadOnlyMany" $modes) }}true{{ end }}
{{- end }}

{{/*
"true" when the Triton pod mounts a ReadWriteOnce claim (models or TensorRT caches): one node
at a time, so updates recreate the pod instead of rolling it.
*/}}
{{- define "facegate.triton.mountsReadWriteOnce" -}}
{{- $modelsRwo := and (eq .Values.models.source "claim") (not (include "facegate.models.claimIsShared" .)) }}
{{- $cache := .Values.triton.tensorrt.cache }}
{{- $cacheRwo := and .Values.triton.tensorrt.enabled (not (has "ReadWriteMany" $cache.accessModes)) }}
{{- if or $modelsRwo $cacheRwo }}true{{ end }}
{{- end }}

{{/*
"true" when the models are fetched by an init container of the Triton pod instead of a Job.
A ReadWriteOnce claim attaches to one node: a Job scheduled elsewhere would wait on it forever
(Multi-Attach), and a WaitForFirstConsumer volume could land in a zone without GPUs. Inside the
Triton pod the fetch runs on the node and in the zone where Triton runs, and nothing else
mounts the claim.
*/}}
{{- define "facegate.models.fetchInPod" -}}
{{- if and (eq .Values.models.source "claim") .Values.models.fetch.enabled (not (include "facegate.models.claimIsShared" .)) }}true{{ end }}
{{- end }}

{{/*
The facegate command (a YAML list) that writes the models and configs into the repository,
for the fetch Job and the fetch init container alike.
*/}}
{{- define "facegate.models.fetchCommand" -}}
{{- $fetch := .Values.models.fetch }}
- facegate
- models
{{- if eq $fetch.mode "synthetic" }}
- synthetic
- --profile
- {{ $fetch.syntheticProfile | quote }}
{{- else }}
- fetch
- --pack
- {{ $fetch.pack | quote }}
- --swapper
- {{ $fetch.swapper | quote }}
- --source
- {{ $fetch.source | quote }}
{{- end }}
- --repository
- {{ .Values.models.mountPath | quote }}
{{- /* The optimised model only serves the embedded Triton's runner; NGC Triton reads model.onnx. */}}
- --no-optimize
{{- with $fetch.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Triton's readiness check: the detector and the recognizer are READY (GET
/v2/models/<name>/ready answers 200). Not /v2/health/ready: with --strict-readiness Triton
reports not-ready while any model is loading or failed, so an on-demand swapper that loads for
minutes, or failed once, would take detection and recognition out of the Service. bash's
/dev/tcp, because the NGC image is not guaranteed to carry curl.
*/}}
{{- define "facegate.triton.readinessScript" -}}
for model in detector recognizer{{ if .Values.models.optional.faces }} faces{{ end }}; do exec 3<>/dev/tcp/127.0.0.1/{{ .Values.triton.service.httpPort }} && printf 'GET /v2/models/%s/ready HTTP/1.0\r\n\r\n' "$model" >&3 && head -n 1 <&3 | grep -q ' 200 ' || exit 1; done
{{- end }}

{{/*
Fail early on values the schema cannot check.
*/}}
{{- define "facegate.validate" -}}
{{- $triton := .Values.triton }}
{{- if le (int $triton.terminationGracePeriodSeconds) (add $triton.preStopSleepSeconds $triton.exitTimeoutSeconds | int) }}
{{- fail "triton.terminationGracePeriodSeconds must exceed triton.preStopSleepSeconds + triton.exitTimeoutSeconds" }}
{{- end }}
{{- $gw := .Values.gateway }}
{{- if le (int $gw.terminationGracePeriodSeconds) (add $gw.preStopSleepSeconds $gw.drainSeconds $gw.requestTimeoutSeconds | int) }}
{{- fail "gateway.terminationGracePeriodSeconds must exceed gateway.preStopSleepSeconds + gateway.drainSeconds + gateway.requestTimeoutSeconds" }}
{{- end }}
{{- range $gw.extraEnv }}
{{- if has .name (list "FACEGATE_DRAIN_S" "FACEGATE_REQUEST_TIMEOUT_S" "FACEGATE_AUTH_DISABLED") }}
{{- fail (printf "gateway.extraEnv must not set %s: use gateway.drainSeconds, gateway.requestTimeoutSeconds or gateway.auth.disabled" .name) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.models.source "objectStore") (not .Values.models.objectStore.url) }}
{{- fail "models.objectStore.url is required when models.source=objectStore" }}
{{- end }}
{{- $several := or $triton.autoscaling.enabled (gt (int $triton.replicaCount) 1) }}
{{- if and (eq .Values.models.source "claim") $several (not (include "facegate.models.claimIsShared" .)) }}
{{- fail "several Triton pods (triton.replicaCount > 1 or triton.autoscaling.enabled) cannot share a ReadWriteOnce model claim across nodes: set models.claim.accessModes to [ReadWriteMany] (or ReadOnlyMany for a pre-filled claim) with a storage class that supports it, or use models.source=objectStore" }}
{{- end }}
{{- if and (eq .Values.models.source "claim") .Values.models.fetch.enabled (has "ReadOnlyMany" .Values.models.claim.accessModes) (not (has "ReadWriteMany" .Values.models.claim.accessModes)) }}
{{- fail "the fetch Job cannot write a ReadOnlyMany claim: fill the claim yourself and set models.fetch.enabled=false, or use ReadWriteMany" }}
{{- end }}
{{- if and $triton.tensorrt.enabled $several (not $triton.tensorrt.cache.existingClaim) (not (has "ReadWriteMany" $triton.tensorrt.cache.accessModes)) }}
{{- fail "several Triton pods cannot share a ReadWriteOnce TensorRT cache claim across nodes: set triton.tensorrt.cache.accessModes to [ReadWriteMany]" }}
{{- end }}
{{- if and .Values.gateway.compat.protocols (not .Values.gateway.compat.networks) }}
{{- fail "gateway.compat.networks must list the client networks (CIDR) allowed on the compatibility routes, e.g. the client pods' CIDR: the routes take no API key, and the gateway's loopback default admits no pod" }}
{{- end }}
{{- if and .Values.models.objectStore.gcsCredentialsKey (not .Values.models.objectStore.credentialsSecret) }}
{{- fail "models.objectStore.gcsCredentialsKey needs models.objectStore.credentialsSecret" }}
{{- end }}
{{- $memoryLimit := dig "limits" "memory" "" (default dict $gw.resources) }}
{{- if $memoryLimit }}
{{- $needed := include "facegate.gateway.memoryNeededBytes" . | float64 }}
{{- if lt (include "facegate.bytes" $memoryLimit | float64) $needed }}
{{- fail (printf "gateway.resources.limits.memory (%v) is below what the gateway's request limits let one request hold, %d MiB (%s): raise the limit or lower gateway.limits (maxImagePixels, maxBatchImages, maxImageBytes) / gateway.compat.maxRequestBytes" $memoryLimit (divf $needed 1048576 | ceil | int) (include "facegate.gateway.memoryRule" .)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A Kubernetes quantity ("2Gi", "1500M", "1073741824") in bytes.
*/}}
{{- define "facegate.bytes" -}}
{{- $text := toString . }}
{{- $number := regexFind "^[0-9.]+" $text | float64 }}
{{- $suffix := trimPrefix (regexFind "^[0-9.]+" $text) $text }}
{{- $factors := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if not (hasKey $factors $suffix) }}
{{- fail (printf "cannot read the quantity %q (use e.g. 2Gi or 2048Mi)" $text) }}
{{- end }}
{{- mulf $number (index $factors $suffix) }}
{{- end }}

{{/*
The memory one gateway request may hold (a floor for gateway.resources.limits.memory): the
process itself, twice the largest body its limits accept (a JSON body is held while it is
parsed and again as the image bytes), and the decoded pixels of a full batch of the largest
images, which /v1/detect/batch (and the ifr route, in groups of the same size) holds at once.
The largest body is a full batch of the largest images as base64 (4/3 of their bytes) or, with
the ifr route, a whole /extract body. A decoded pixel is counted at 10 bytes: 3 for the BGR
image held until the faces are cropped, plus the decoder's transient copies (Pillow's 4-byte
RGB, the array, the BGR conversion) and allocator slack; tests/deploy/test_helm_day2.py
measures the cost of one more pixel in a batch (6-7 bytes for 12 MP PNGs). Null limits are the gateway's own
defaults (gateway/config.py). The floor covers one request; gateway.maxInFlight admits many.
*/}}
{{- define "facegate.gateway.memoryBaselineBytes" -}}
{{- mul 384 1048576 }}
{{- end }}

{{- define "facegate.gateway.bytesPerDecodedPixel" -}}
10
{{- end }}

{{- define "facegate.gateway.largestBodyBytes" -}}
{{- $gw := .Values.gateway }}
{{- $imageBytes := default (mul 20 1048576) $gw.limits.maxImageBytes | float64 }}
{{- $batch := default 16 $gw.limits.maxBatchImages | float64 }}
{{- $largest := divf (mulf $imageBytes $batch 4) 3 }}
{{- if has "ifr" $gw.compat.protocols }}
{{- $extract := default (mul 256 1048576) $gw.compat.maxRequestBytes | float64 }}
{{- $largest = maxf $largest $extract }}
{{- end }}
{{- $largest }}
{{- end }}

{{- define "facegate.gateway.decodedBatchBytes" -}}
{{- $limits := .Values.gateway.limits }}
{{- $pixels := default 40000000 $limits.maxImagePixels | float64 }}
{{- $batch := default 16 $limits.maxBatchImages | float64 }}
{{- mulf $pixels $batch (include "facegate.gateway.bytesPerDecodedPixel" . | float64) }}
{{- end }}

{{- define "facegate.gateway.memoryNeededBytes" -}}
{{- $body := mulf 2 (include "facegate.gateway.largestBodyBytes" . | float64) }}
{{- addf (include "facegate.gateway.memoryBaselineBytes" . | float64) $body (include "facegate.gateway.decodedBatchBytes" . | float64) }}
{{- end }}

{{- define "facegate.gateway.memoryRule" -}}
{{- $mib := 1048576.0 }}
{{- printf "384 MiB + 2 x the largest body, %d MiB, + a batch of decoded images at %s bytes a pixel, %d MiB" (divf (include "facegate.gateway.largestBodyBytes" . | float64) $mib | ceil | int) (include "facegate.gateway.bytesPerDecodedPixel" .) (divf (include "facegate.gateway.decodedBatchBytes" . | float64) $mib | ceil | int) }}
{{- end }}

{{/* The Secret holding the gallery database URL (yours, or the generated one). */}}
{{- define "facegate.gallery.secretName" -}}
{{- if .Values.gallery.existingSecret -}}
{{- .Values.gallery.existingSecret -}}
{{- else -}}
{{- include "facegate.componentName" (dict "root" . "component" "gallery") -}}
{{- end -}}
{{- end -}}

{{/*
Gateway settings from values (env entries, a YAML list). A null value leaves the setting to the
gateway's own default (gateway/config.py), so the chart does not repeat the defaults.
*/}}
{{- define "facegate.gateway.settingsEnv" -}}
{{- $gw := .Values.gateway }}
{{- with $gw.maxInFlight }}
- name: FACEGATE_MAX_IN_FLIGHT
  value: {{ . | int64 | quote }}
{{- end }}
{{- if not (kindIs "invalid" $gw.maxInFlightPerKey) }}
- name: FACEGATE_MAX_IN_FLIGHT_PER_KEY
  value: {{ $gw.maxInFlightPerKey | int64 | quote }}
{{- end }}
{{- with $gw.keyRateLimits }}
- name: FACEGATE_KEY_RATE_LIMITS
  value: {{ . | quote }}
{{- end }}
{{- with $gw.bodyTimeoutSeconds }}
- name: FACEGATE_BODY_TIMEOUT_S
  value: {{ . | quote }}
{{- end }}
{{- if $gw.audit.table }}
- name: FACEGATE_AUDIT_TABLE
  value: "true"
{{- end }}
{{- with $gw.audit.retentionDays }}
- name: FACEGATE_AUDIT_RETENTION_DAYS
  value: {{ . | int64 | quote }}
{{- end }}
{{- with $gw.corsOrigins }}
- name: FACEGATE_CORS_ORIGINS
  value: {{ toJson . | quote }}
{{- end }}
{{- with $gw.limits.maxImageBytes }}
- name: FACEGATE_MAX_IMAGE_BYTES
  value: {{ . | int64 | quote }}
{{- end }}
{{- with $gw.limits.maxImagePixels }}
- name: FACEGATE_MAX_IMAGE_PIXELS
  value: {{ . | int64 | quote }}
{{- end }}
{{- with $gw.limits.maxBatchImages }}
- name: FACEGATE_MAX_BATCH_IMAGES
  value: {{ . | int64 | quote }}
{{- end }}
{{- if $gw.swapper.preload }}
- name: FACEGATE_SWAPPER_PRELOAD
  value: "true"
{{- end }}
{{- if not (kindIs "invalid" $gw.swapper.idleTtlSeconds) }}
- name: FACEGATE_SWAPPER_IDLE_TTL_S
  value: {{ $gw.swapper.idleTtlSeconds | quote }}
{{- end }}
{{- with $gw.swapper.waitSeconds }}
- name: FACEGATE_SWAPPER_WAIT_S
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The compatibility routes' settings (gateway.compat), only while some protocol is on.
*/}}
{{- define "facegate.gateway.compatEnv" -}}
{{- $compat := .Values.gateway.compat }}
{{- if $compat.protocols }}
- name: FACEGATE_COMPAT
  value: {{ join "," $compat.protocols | quote }}
- name: FACEGATE_COMPAT_NETWORKS
  value: {{ join "," $compat.networks | quote }}
{{- with $compat.imagesDir }}
- name: FACEGATE_COMPAT_IMAGES_DIR
  value: {{ . | quote }}
{{- end }}
{{- with $compat.urlHosts }}
- name: FACEGATE_COMPAT_URL_HOSTS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $compat.maxImages }}
- name: FACEGATE_COMPAT_MAX_IMAGES
  value: {{ . | int64 | quote }}
{{- end }}
{{- with $compat.maxRequestBytes }}
- name: FACEGATE_COMPAT_MAX_REQUEST_BYTES
  value: {{ . | int64 | quote }}
{{- end }}
{{- with $compat.immichModels }}
- name: FACEGATE_COMPAT_IMMICH_MODELS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $compat.immichPrefix }}
- name: FACEGATE_COMPAT_IMMICH_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
