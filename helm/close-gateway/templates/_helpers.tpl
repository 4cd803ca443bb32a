{{/* Names and labels, as `helm create` makes them. */}}
{{- define "close-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "close-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "close-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "close-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "close-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "close-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Where the API key Secret and the groups ConfigMap are mounted. */}}
{{- define "close-gateway.apiKeyDir" -}}/var/run/secrets/close-gateway{{- end }}
{{- define "close-gateway.groupsDir" -}}/etc/close-gateway{{- end }}

{{/* Seconds the kubelet waits before SIGKILL: the preStop sleep, the server's drain
     (SHUTDOWN_GRACE) and 5 s for the process to exit. One value, shutdownGraceSeconds, drives both. */}}
{{- define "close-gateway.terminationGracePeriodSeconds" -}}
{{- add (int .Values.preStopSleepSeconds) (int .Values.shutdownGraceSeconds) 5 }}
{{- end }}

{{/* Environment variables the chart sets itself; `env` may not repeat them. */}}
{{- define "close-gateway.managedEnv" -}}
LISTEN_ADDR METRICS_ADDR CLOSE_API_KEY CLOSE_API_KEY_FILE REDIS_URL REDIS_CLUSTER_NODES LIMITER_GROUPS_FILE SHUTDOWN_GRACE LOG_FORMAT LOG_LEVEL
{{- end }}

{{/* A probe: the chart's gRPC health check plus the timings from values. Only timing fields are
     accepted, so a user's handler (httpGet, exec, ...) cannot end up beside `grpc`, which
     Kubernetes rejects. Arguments: (list $ "liveness"). */}}
{{- define "close-gateway.probe" -}}
{{- $root := index . 0 }}
{{- $kind := index . 1 }}
{{- $timings := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "successThreshold" "failureThreshold" "terminationGracePeriodSeconds" }}
{{- $probe := index $root.Values.probes $kind | default dict }}
{{- range $key, $_ := $probe }}
{{- if not (has $key $timings) }}
{{- fail (printf "probes.%s.%s: the chart's probes are gRPC health checks on grpcPort; set only their timings (%s)" $kind $key (join ", " $timings)) }}
{{- end }}
{{- end }}
grpc:
  # A number: Kubernetes rejects a named port here.
  port: {{ int $root.Values.grpcPort }}
{{- with $probe }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Settings that cannot work together stop rendering with a message naming them. */}}
{{- define "close-gateway.validate" -}}
{{- if not .Values.apiKey.existingSecret }}
{{- fail "apiKey.existingSecret is required: the name of a Secret holding the Close API key (entry apiKey.key, one key per line for a pool)" }}
{{- end }}
{{- if and .Values.redis.existingSecret .Values.redis.url }}
{{- fail "redis.existingSecret and redis.url are both set: give one" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not (or .Values.redis.existingSecret .Values.redis.url)) }}
{{- fail (printf "replicaCount is %d but no Redis is configured: each replica would run its own limiter and together they would exceed Close's limits. Set redis.existingSecret (or redis.url), or replicaCount: 1" (int .Values.replicaCount)) }}
{{- end }}
{{- $managed := splitList " " (include "close-gateway.managedEnv" .) }}
{{- range .Values.env }}
{{- if has .name $managed }}
{{- fail (printf "env: %s is set by the chart; use its value instead (see values.yaml)" .name) }}
{{- end }}
{{- end }}
{{- if le (int .Values.shutdownGraceSeconds) 0 }}
{{- fail "shutdownGraceSeconds must be a positive number of seconds" }}
{{- end }}
{{- end }}
