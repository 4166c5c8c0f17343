{{/* Chart name, truncated to a DNS label. */}}
{{- define "insync-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release whose name already contains the chart name is
not repeated ("insync-operator", not "insync-operator-insync-operator").
*/}}
{{- define "insync-operator.fullname" -}}
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

{{/*
Name of cluster-scoped objects (ClusterRoles, ClusterRoleBindings): they are shared by every
namespace, so the release namespace is part of the name and two releases never collide.
*/}}
{{- define "insync-operator.clusterName" -}}
{{- printf "%s-%s" (include "insync-operator.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "insync-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels on every object. */}}
{{- define "insync-operator.labels" -}}
helm.sh/chart: {{ include "insync-operator.chart" . }}
{{ include "insync-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ include "insync-operator.imageTag" . | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: insync-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pods; never change them (Deployment selectors are immutable). */}}
{{- define "insync-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "insync-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "insync-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "insync-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "insync-operator.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "insync-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "insync-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Leader election: forced by value, and always on with more than one replica. */}}
{{- define "insync-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/* The Lease the operator takes; fixed in the operator binary. */}}
{{- define "insync-operator.leaseName" -}}
insync-operator
{{- end }}

{{- define "insync-operator.dnsOwnerId" -}}
{{- default (printf "%s.%s" .Release.Name .Release.Namespace) .Values.dns.ownerId }}
{{- end }}
