{{/* Chart name, overridable with nameOverride. */}}
{{- define "coder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource name: the release name if it contains the chart name, else <release>-<name>. */}}
{{- define "coder.fullname" -}}
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

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "coder.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels for every object. */}}
{{- define "coder.labels" -}}
helm.sh/chart: {{ include "coder.chart" . }}
{{ include "coder.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coder
{{- end }}

{{/* Selector labels: name and instance only; adding one is a breaking change. */}}
{{- define "coder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount coderd and its built-in provisioner run as. */}}
{{- define "coder.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "coder.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: set the existing ServiceAccount name when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Coder image, pinned to the chart's appVersion unless image.tag is set. */}}
{{- define "coder.image" -}}
{{- $tag := default (printf "v%s" .Chart.AppVersion) .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Host of coder.config.accessUrl (no scheme, port or path). */}}
{{- define "coder.accessHost" -}}
{{- $u := urlParse .Values.coder.config.accessUrl }}
{{- regexReplaceAll ":[0-9]+$" $u.host "" }}
{{- end }}

{{/* Ingress host for the wildcard URL: `*-suffix.example.com` becomes `*.example.com`. */}}
{{- define "coder.wildcardHost" -}}
{{- $h := regexReplaceAll "^[a-z]+://" .Values.coder.config.wildcardAccessUrl "" }}
{{- $h = regexReplaceAll ":[0-9]+$" $h "" }}
{{- regexReplaceAll "^\\*[^.]+\\." $h "*." }}
{{- end }}

{{/* True when more than one coderd replica can run (HA relay needed). */}}
{{- define "coder.ha" -}}
{{- if or (gt (int .Values.coder.replicaCount) 1) .Values.autoscaling.enabled }}true{{- end }}
{{- end }}

{{/* Workspace namespaces as a list of names (default: the release namespace). */}}
{{- define "coder.workspaceNamespaces" -}}
{{- $names := list }}
{{- range .Values.coder.workspaces.namespaces }}
{{- $names = append $names .name }}
{{- end }}
{{- if not $names }}
{{- $names = list .Release.Namespace }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* Secret names: an existing Secret, else the chart's own (or the operator-synced one). */}}
{{- define "coder.databaseSecretName" -}}
{{- default (printf "%s-database" (include "coder.fullname" .)) .Values.coder.database.existingSecret }}
{{- end }}
{{- define "coder.oidcSecretName" -}}
{{- default (printf "%s-oidc" (include "coder.fullname" .)) .Values.coder.oidc.existingSecret }}
{{- end }}
{{- define "coder.gitlabSecretName" -}}
{{- default (printf "%s-gitlab" (include "coder.fullname" .)) .Values.coder.gitlab.existingSecret }}
{{- end }}

{{/* Fail early, with what to set, on values that cannot work. */}}
{{- define "coder.validate" -}}
{{- $c := .Values.coder }}
{{- $vault := .Values.vault.mode }}
{{- if not (regexMatch "^https?://[^/]+" $c.config.accessUrl) }}
{{- fail "coder.config.accessUrl must be an http(s) URL reachable by users and workspace agents, e.g. https://coder.example.com" }}
{{- end }}
{{- if and $c.config.wildcardAccessUrl (not (regexMatch "^\\*[^*]+$" (regexReplaceAll "^[a-z]+://" $c.config.wildcardAccessUrl ""))) }}
{{- fail "coder.config.wildcardAccessUrl must start with exactly one `*`, e.g. *.workspace.coder.example.com" }}
{{- end }}
{{- if not (or $c.database.url $c.database.existingSecret $vault) }}
{{- fail "coder.database: set coder.database.url or coder.database.existingSecret (PostgreSQL URL), or vault.mode; without it coderd would run a throw-away built-in database" }}
{{- end }}
{{- if $c.oidc.enabled }}
{{- if not (and $c.oidc.issuerUrl $c.oidc.clientId) }}
{{- fail "coder.oidc.enabled: set coder.oidc.issuerUrl (https://<authentik>/application/o/<slug>/) and coder.oidc.clientId" }}
{{- end }}
{{- if not (or $c.oidc.clientSecret $c.oidc.existingSecret $vault) }}
{{- fail "coder.oidc.enabled: set coder.oidc.clientSecret or coder.oidc.existingSecret, or vault.mode" }}
{{- end }}
{{- end }}
{{- if $c.gitlab.enabled }}
{{- if not (and $c.gitlab.url $c.gitlab.clientId) }}
{{- fail "coder.gitlab.enabled: set coder.gitlab.url (https://gitlab.example.com) and coder.gitlab.clientId" }}
{{- end }}
{{- if not (or $c.gitlab.clientSecret $c.gitlab.existingSecret $vault) }}
{{- fail "coder.gitlab.enabled: set coder.gitlab.clientSecret or coder.gitlab.existingSecret, or vault.mode" }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- end }}

{{/* Rules the provisioner needs where workspaces run: the workspace Deployment, its volumes and ServiceAccount. */}}
{{- define "coder.workspaceRules" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumeclaims, serviceaccounts]
  verbs: [create, delete, get, list, watch, patch, update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, delete, get, list, watch, patch, update]
{{- with .Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* What a developer may do in the kubernetes template's workload namespace: the rules of
the developer ClusterRole (rbac.workloadNamespaces.developerClusterRole), which that template
binds with a RoleBinding there (templates/kubernetes/main.tf.j2). The provisioner does not
hold them; it may only bind that ClusterRole. */}}
{{- define "coder.developerRules" -}}
- apiGroups: [""]
  resources: [pods, pods/log, pods/exec, pods/attach, pods/portforward, services, endpoints, configmaps, secrets, persistentvolumeclaims, serviceaccounts, events]
  verbs: ["*"]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets, replicasets]
  verbs: ["*"]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: ["*"]
- apiGroups: [autoscaling, policy]
  resources: [horizontalpodautoscalers, poddisruptionbudgets]
  verbs: ["*"]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: ["*"]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: ["*"]
- apiGroups: [events.k8s.io, discovery.k8s.io]
  resources: [events, endpointslices]
  verbs: [get, list, watch]
{{- end }}

{{/* What the provisioner needs where the kubernetes template binds the developer ClusterRole:
the workspaces' RoleBindings, and `bind` on that one ClusterRole, so Kubernetes lets it grant
the ClusterRole's rules without holding them. With migrateRoles, also get and delete on Roles:
workspaces built by the template's older version have a Role of their own in their state. */}}
{{- define "coder.workloadBindRules" -}}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [create, get, update, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [{{ .Values.rbac.workloadNamespaces.developerClusterRole | quote }}]
{{- if .Values.rbac.workloadNamespaces.migrateRoles }}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles]
  verbs: [get, delete]
{{- end }}
{{- end }}
