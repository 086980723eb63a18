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

{{/* CODER_WILDCARD_ACCESS_URL: a hostname pattern. coderd refuses a scheme ("hostname pattern
must not contain a scheme"), so a leading `http(s)://` and a trailing `/` are dropped; a path
is refused in coder.validate. */}}
{{- define "coder.wildcardPattern" -}}
{{- regexReplaceAll "/$" (regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://" .Values.coder.config.wildcardAccessUrl "") "" }}
{{- end }}

{{/* Ingress host for the wildcard URL: `*-suffix.example.com` becomes `*.example.com`. */}}
{{- define "coder.wildcardHost" -}}
{{- $h := include "coder.wildcardPattern" . }}
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

{{/* A value as given, or, when written as the original chart README's helmfile expression
`{{ .Values.secrets.<key> }}` (left unrendered when the file is used as a plain values file),
that key of the top-level `secrets` block. Never passed through `tpl`: a secret may contain `{{`. */}}
{{- define "coder.resolve" -}}
{{- $root := index . 0 }}
{{- $value := toString (index . 1) }}
{{- $m := regexFind "^\\{\\{-?\\s*\\.Values\\.secrets\\.[A-Za-z0-9_]+\\s*-?\\}\\}$" $value }}
{{- if $m }}
{{- $key := regexReplaceAll "^\\{\\{-?\\s*\\.Values\\.secrets\\.([A-Za-z0-9_]+)\\s*-?\\}\\}$" $m "${1}" }}
{{- $secrets := $root.Values.secrets | default dict }}
{{- if not (hasKey $secrets $key) }}
{{- fail (printf "%s refers to secrets.%s, which the values do not set; add it to the secrets block" $value $key) }}
{{- end }}
{{- index $secrets $key | toString }}
{{- else }}
{{- $value }}
{{- end }}
{{- end }}

{{/* Client ids and secrets: the coder.* key, else the original chart README's `secrets` key. */}}
{{- define "coder.oidcClientId" -}}
{{- include "coder.resolve" (list . (.Values.coder.oidc.clientId | default ((.Values.secrets | default dict).coderOidcClientId) | default "")) }}
{{- end }}
{{- define "coder.oidcClientSecret" -}}
{{- include "coder.resolve" (list . (.Values.coder.oidc.clientSecret | default ((.Values.secrets | default dict).coderOidcClientSecret) | default "")) }}
{{- end }}
{{- define "coder.gitlabClientId" -}}
{{- include "coder.resolve" (list . (.Values.coder.gitlab.clientId | default ((.Values.secrets | default dict).coderGitlabClientId) | default "")) }}
{{- end }}
{{- define "coder.gitlabClientSecret" -}}
{{- include "coder.resolve" (list . (.Values.coder.gitlab.clientSecret | default ((.Values.secrets | default dict).coderGitlabClientSecret) | default "")) }}
{{- end }}

{{/* The PostgreSQL URL the chart stores: coder.database.url, else composed from
secrets.coderPostgresPassword (the original chart README: release `postgres` in namespace
`db`, user `postgres`, database `coder`). The password is percent-encoded. */}}
{{- define "coder.databaseUrl" -}}
{{- $d := .Values.coder.database }}
{{- if $d.url }}
{{- include "coder.resolve" (list . $d.url) }}
{{- else }}
{{- $pw := (.Values.secrets | default dict).coderPostgresPassword | default "" | toString }}
{{- if $pw }}
{{- $pw = include "coder.resolve" (list . $pw) | urlquery | replace "+" "%20" }}
{{- printf "postgres://%s:%s@%s:%d/%s?sslmode=%s" (urlquery $d.user) $pw $d.host (int $d.port) (urlquery $d.name) $d.sslMode }}
{{- end }}
{{- end }}
{{- end }}

{{/* A Go duration of hours, minutes and seconds (`720h`, `1h30m`) in seconds. */}}
{{- define "coder.durationSeconds" -}}
{{- $d := toString . }}
{{- $h := regexFind "[0-9]+h" $d | trimSuffix "h" | default "0" | int64 }}
{{- $m := regexFind "[0-9]+m" $d | trimSuffix "m" | default "0" | int64 }}
{{- $s := regexFind "[0-9]+s" $d | trimSuffix "s" | default "0" | int64 }}
{{- add (mul $h 3600) (mul $m 60) $s }}
{{- end }}

{{/* True when the cluster serves admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy
(Kubernetes 1.30+). A live install sees the kind in discovery; an offline render has only
group versions, so the Kubernetes version decides there. */}}
{{- define "coder.vapAvailable" -}}
{{- if .Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" }}true
{{- else if and (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1") (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) }}true
{{- end }}
{{- end }}

{{/* True when the provisioner gets the per-workspace namespace rights: with the guard, or
explicitly without it. */}}
{{- define "coder.perWorkspaceRights" -}}
{{- $wn := .Values.rbac.workloadNamespaces }}
{{- if and .Values.rbac.create $wn.perWorkspace (or (include "coder.vapAvailable" .) $wn.perWorkspaceWithoutGuard) }}true{{- end }}
{{- end }}

{{/* Fail early, with what to set, on values that cannot work. */}}
{{- define "coder.validate" -}}
{{- $c := .Values.coder }}
{{- $vault := .Values.vault.mode }}
{{- if not (regexMatch "^https?://[^/]+" $c.config.accessUrl) }}
{{- fail "coder.config.accessUrl must be an http(s) URL reachable by users and workspace agents, e.g. https://coder.example.com" }}
{{- end }}
{{- if $c.config.wildcardAccessUrl }}
{{- $pattern := include "coder.wildcardPattern" . }}
{{- if contains "/" $pattern }}
{{- fail (printf "coder.config.wildcardAccessUrl %q: give a hostname pattern without a path, e.g. *.workspace.coder.example.com (coderd accepts no scheme or path)" $c.config.wildcardAccessUrl) }}
{{- end }}
{{- if not (regexMatch "^\\*[^*]+$" $pattern) }}
{{- fail "coder.config.wildcardAccessUrl must start with exactly one `*`, e.g. *.workspace.coder.example.com" }}
{{- end }}
{{- end }}
{{- if not (or (include "coder.databaseUrl" .) $c.database.existingSecret $vault) }}
{{- fail "coder.database: set coder.database.url or coder.database.existingSecret (PostgreSQL URL), secrets.coderPostgresPassword, or vault.mode; without it coderd would run a throw-away built-in database" }}
{{- end }}
{{- if $c.oidc.enabled }}
{{- if not (and $c.oidc.issuerUrl (include "coder.oidcClientId" .)) }}
{{- fail "coder.oidc.enabled: set coder.oidc.issuerUrl (https://<authentik>/application/o/<slug>/) and coder.oidc.clientId (or secrets.coderOidcClientId)" }}
{{- end }}
{{- if not (or (include "coder.oidcClientSecret" .) $c.oidc.existingSecret $vault) }}
{{- fail "coder.oidc.enabled: set coder.oidc.clientSecret (or secrets.coderOidcClientSecret) or coder.oidc.existingSecret, or vault.mode" }}
{{- end }}
{{- end }}
{{- if $c.gitlab.enabled }}
{{- if not (and $c.gitlab.url (include "coder.gitlabClientId" .)) }}
{{- fail "coder.gitlab.enabled: set coder.gitlab.url (https://gitlab.example.com) and coder.gitlab.clientId (or secrets.coderGitlabClientId)" }}
{{- end }}
{{- if not (or (include "coder.gitlabClientSecret" .) $c.gitlab.existingSecret $vault) }}
{{- fail "coder.gitlab.enabled: set coder.gitlab.clientSecret (or secrets.coderGitlabClientSecret) or coder.gitlab.existingSecret, or vault.mode" }}
{{- end }}
{{- end }}
{{- if $c.agentapi.enabled }}
{{- if gt (include "coder.durationSeconds" $c.agentapi.tokenLifetime | int64) (include "coder.durationSeconds" $c.agentapi.maxTokenLifetime | int64) }}
{{- fail (printf "coder.agentapi.tokenLifetime (%s) exceeds coder.agentapi.maxTokenLifetime (%s): coderd would refuse tokens created with the default; lower tokenLifetime or raise maxTokenLifetime" $c.agentapi.tokenLifetime $c.agentapi.maxTokenLifetime) }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.namespace (ne .Values.namespace .Release.Namespace) }}
{{- fail (printf "namespace: %q in the values does not choose the namespace (Helm installs into %q); install with --namespace %s, or drop the key" .Values.namespace .Release.Namespace .Values.namespace) }}
{{- end }}
{{- if and (or .Values.autoscaling.enabled (gt (int $c.replicaCount) 1)) (not $c.licensed) }}
{{- fail "more than one coderd replica (coder.replicaCount > 1 or autoscaling.enabled) needs a Coder Premium licence: without it coderd refuses workspace connections once a second replica starts. Add the licence, then set coder.licensed=true; or keep one replica" }}
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
{{- $edit := "[get, list, watch, create, update, patch, delete, deletecollection]" }}
- apiGroups: [""]
  resources: [pods, services, configmaps, secrets, persistentvolumeclaims, serviceaccounts]
  verbs: {{ $edit }}
- apiGroups: [""]
  resources: [pods/exec, pods/attach, pods/portforward]
  verbs: [get, create]
- apiGroups: [""]
  resources: [pods/log, endpoints, events]
  verbs: [get, list, watch]
{{- include "coder.developerWorkloadRules" . }}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: {{ $edit }}
{{- end }}

{{/* What every developer ClusterRole shares: workloads, read-only NetworkPolicies (the chart's
isolation policy must stay), events and endpoint slices. No escalate, bind or impersonate. */}}
{{- define "coder.developerWorkloadRules" -}}
{{- $edit := "[get, list, watch, create, update, patch, delete, deletecollection]" }}
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets, replicasets]
  verbs: {{ $edit }}
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: {{ $edit }}
- apiGroups: [autoscaling, policy]
  resources: [horizontalpodautoscalers, poddisruptionbudgets]
  verbs: {{ $edit }}
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: {{ $edit }}
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [events.k8s.io, discovery.k8s.io]
  resources: [events, endpointslices]
  verbs: [get, list, watch]
{{- end }}

{{/* A namespace shared by several developers: no Secrets (a pod spec could mount another's),
no exec, attach or port-forward into another's pods, no ServiceAccounts or RBAC. */}}
{{- define "coder.sharedDeveloperRules" -}}
{{- $edit := "[get, list, watch, create, update, patch, delete, deletecollection]" }}
- apiGroups: [""]
  resources: [pods, services, configmaps, persistentvolumeclaims]
  verbs: {{ $edit }}
- apiGroups: [""]
  resources: [pods/log, endpoints, events, serviceaccounts]
  verbs: [get, list, watch]
{{- include "coder.developerWorkloadRules" . }}
{{- end }}

{{/* What the provisioner needs where the kubernetes template binds the developer ClusterRole:
the workspaces' RoleBindings, and `bind` on that one ClusterRole, so Kubernetes lets it grant
the ClusterRole's rules without holding them. With migrateRoles, also get and delete on Roles:
workspaces built by the template's older version have a Role of their own in their state. */}}
{{- define "coder.workloadBindRules" -}}
{{- $root := index . 0 }}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [create, get, update, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [{{ index . 1 | quote }}]
{{- if $root.Values.rbac.workloadNamespaces.migrateRoles }}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles]
  verbs: [get, delete]
{{- end }}
{{- end }}

{{/* The Deployment's rollingUpdate: one replica is replaced, never overlapped (Coder runs database
migrations on start; two versions must not run side by side); several roll one at a time with
none unavailable. coder.strategy.rollingUpdate overrides either. */}}
{{- define "coder.rollingUpdate" -}}
{{- $single := and (not .Values.autoscaling.enabled) (le (int .Values.coder.replicaCount) 1) }}
{{- $default := ternary (dict "maxSurge" 0 "maxUnavailable" 1) (dict "maxSurge" 1 "maxUnavailable" 0) $single }}
{{- range $k, $v := (default (dict) .Values.coder.strategy.rollingUpdate) }}
{{- $_ := set $default $k $v }}
{{- end }}
{{- toYaml $default }}
{{- end }}

{{/* Labels of the helm test pod: none of the selector labels, so neither the Services, the
PodDisruptionBudget nor the anti-affinity select it. */}}
{{- define "coder.testLabels" -}}
helm.sh/chart: {{ include "coder.chart" . }}
app.kubernetes.io/name: {{ include "coder.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coder
app.kubernetes.io/component: test
{{- end }}
