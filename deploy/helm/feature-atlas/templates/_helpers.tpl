{{/* Names and shared snippets. */}}
{{- define "atlas.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "atlas.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "atlas.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "atlas.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "atlas.gpuImage" -}}
{{ .Values.gpuImage.repository }}:{{ .Values.gpuImage.tag | default (printf "%s-gpu" .Chart.AppVersion) }}
{{- end -}}

{{- define "atlas.secretName" -}}{{ include "atlas.fullname" . }}-secrets{{- end -}}

{{/* A GPU belongs to the ingest Job and the steering worker, never to the API replicas (they do not run the model). */}}
{{- define "atlas.checkValues" -}}
{{- $res := .Values.api.resources | default dict -}}
{{- range $kind := list "requests" "limits" -}}
{{- range $name, $_ := (get $res $kind | default dict) -}}
{{- if regexMatch "(^|/)gpu$|nvidia.com/|amd.com/gpu|gpu.intel.com/" $name -}}
{{- fail (printf "api.resources.%s requests a GPU (%s): the API replicas do not run the model; give the GPU to steerWorker (steerWorker.enabled=true, steerWorker.gpu) or to the ingest Job (ingest.gpu) and remove it from api.resources" $kind $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.neo4j.existingSecret) (not .Values.neo4j.password) -}}
{{- fail "neo4j.password is empty and neo4j.existingSecret is not set: give one (--set neo4j.password=... or a Secret with key neo4j-password)" -}}
{{- end -}}
{{- if and .Values.api.autoscaling.enabled (lt (int .Values.api.autoscaling.maxReplicas) (int .Values.api.autoscaling.minReplicas)) -}}
{{- fail (printf "api.autoscaling.maxReplicas (%d) is below minReplicas (%d)" (int .Values.api.autoscaling.maxReplicas) (int .Values.api.autoscaling.minReplicas)) -}}
{{- end -}}
{{- if and .Values.api.podDisruptionBudget.enabled (ge (int .Values.api.podDisruptionBudget.minAvailable) (int (ternary .Values.api.autoscaling.minReplicas .Values.api.replicas .Values.api.autoscaling.enabled))) -}}
{{- fail (printf "api.podDisruptionBudget.minAvailable (%d) must be below the API replica count (%d), or no node could ever be drained" (int .Values.api.podDisruptionBudget.minAvailable) (int (ternary .Values.api.autoscaling.minReplicas .Values.api.replicas .Values.api.autoscaling.enabled))) -}}
{{- end -}}
{{- end -}}

{{/* Neo4j connection environment shared by the API, the worker and the ingest Job. */}}
{{- define "atlas.neo4jEnv" -}}
- name: NEO4J_URI
  value: {{ .Values.neo4j.uri | quote }}
{{- with .Values.neo4j.readUris }}
- name: NEO4J_READ_URIS
  value: {{ join "," . | quote }}
{{- end }}
- name: NEO4J_USERNAME
  value: {{ .Values.neo4j.username | quote }}
- name: NEO4J_DATABASE
  value: {{ .Values.neo4j.database | quote }}
- name: NEO4J_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.neo4j.existingSecret | default (include "atlas.secretName" .) }}
      key: neo4j-password
- name: ATLAS_CACHE_DIR
  value: /var/cache/feature-atlas
{{- end -}}

{{- define "atlas.gpuResources" -}}
{{- $r := deepCopy (.resources | default dict) -}}
{{- if gt (int .gpu) 0 -}}
{{- $limits := get $r "limits" | default dict -}}
{{- $_ := set $limits .gpuResource (int .gpu) -}}
{{- $_ := set $r "limits" $limits -}}
{{- end -}}
{{- toYaml $r -}}
{{- end -}}

{{- define "atlas.writableVolumes" -}}
- name: tmp
  emptyDir: {}
- name: cache
  emptyDir: {}
{{- end -}}

{{- define "atlas.writableMounts" -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /var/cache/feature-atlas
{{- end -}}
