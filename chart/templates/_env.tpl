{{/* Environment of the coderd container, built from values (coder server reads CODER_*). */}}
{{- define "coder.env" -}}
{{- $c := .Values.coder }}
{{- $fromSecrets := not (eq .Values.vault.mode "agent") }}
- name: CODER_HTTP_ADDRESS
  value: "0.0.0.0:8080"
- name: CODER_ACCESS_URL
  value: {{ $c.config.accessUrl | quote }}
{{- if $c.config.wildcardAccessUrl }}
- name: CODER_WILDCARD_ACCESS_URL
  value: {{ include "coder.wildcardPattern" . | quote }}
- name: CODER_DISABLE_PATH_APPS
  value: {{ $c.config.disablePathApps | quote }}
{{- end }}
- name: CODER_TELEMETRY_ENABLE
  value: {{ $c.config.telemetry | quote }}
- name: CODER_UPDATE_CHECK
  value: "false"
# Self-hosted: no Coder-managed GitHub login or external auth next to Authentik and GitLab.
- name: CODER_OAUTH2_GITHUB_DEFAULT_PROVIDER_ENABLE
  value: "false"
- name: CODER_EXTERNAL_AUTH_GITHUB_DEFAULT_PROVIDER_ENABLE
  value: "false"
- name: CODER_PROVISIONER_DAEMONS
  value: {{ $c.config.provisionerDaemons | quote }}
- name: CODER_REDIRECT_TO_ACCESS_URL
  value: {{ $c.config.redirectToAccessUrl | quote }}
- name: CODER_SESSION_DURATION
  value: {{ $c.config.sessionDuration | quote }}
{{- with $c.config.proxyTrustedOrigins }}
- name: CODER_PROXY_TRUSTED_ORIGINS
  value: {{ join "," . | quote }}
- name: CODER_PROXY_TRUSTED_HEADERS
  value: {{ join "," $c.config.proxyTrustedHeaders | quote }}
{{- end }}
{{- if $c.config.derpForceWebsockets }}
- name: CODER_DERP_FORCE_WEBSOCKETS
  value: "true"
{{- end }}
{{- if $c.config.jsonLogs }}
- name: CODER_LOGGING_JSON
  value: /dev/stderr
# Human-readable logs default to stderr too: one stream, one format.
- name: CODER_LOGGING_HUMAN
  value: /dev/null
{{- end }}
- name: CODER_PROMETHEUS_ENABLE
  value: "true"
- name: CODER_PROMETHEUS_ADDRESS
  value: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
- name: CODER_PROMETHEUS_COLLECT_AGENT_STATS
  value: {{ .Values.metrics.collectAgentStats | quote }}
- name: CODER_PROMETHEUS_COLLECT_DB_METRICS
  value: {{ .Values.metrics.collectDbMetrics | quote }}
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
{{- if $fromSecrets }}
- name: CODER_PG_CONNECTION_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "coder.databaseSecretName" . }}
      key: {{ $c.database.secretKey }}
{{- end }}
{{- if $c.agentapi.enabled }}
- name: CODER_DEFAULT_TOKEN_LIFETIME
  value: {{ $c.agentapi.tokenLifetime | quote }}
- name: CODER_MAX_TOKEN_LIFETIME
  value: {{ $c.agentapi.maxTokenLifetime | quote }}
{{- end }}
{{- if include "coder.ha" . }}
- name: KUBE_POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: CODER_DERP_SERVER_RELAY_URL
  value: "http://$(KUBE_POD_IP):8080"
- name: CODER_CLUSTER_HOST
  value: "$(KUBE_POD_IP)"
{{- end }}
{{- include "coder.env.oidc" . }}
{{- include "coder.env.gitlab" . }}
{{- with $c.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* OIDC (Authentik) settings. */}}
{{- define "coder.env.oidc" -}}
{{- $o := .Values.coder.oidc }}
{{- if $o.enabled }}
- name: CODER_OIDC_ISSUER_URL
  value: {{ $o.issuerUrl | quote }}
- name: CODER_OIDC_CLIENT_ID
  value: {{ include "coder.oidcClientId" . | quote }}
{{- if ne .Values.vault.mode "agent" }}
- name: CODER_OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "coder.oidcSecretName" . }}
      key: {{ $o.secretKey }}
{{- end }}
- name: CODER_OIDC_SCOPES
  value: {{ splitList " " $o.scopes | compact | join "," | quote }}
- name: CODER_OIDC_IGNORE_EMAIL_VERIFIED
  value: {{ $o.ignoreEmailVerified | quote }}
- name: CODER_OIDC_ALLOW_SIGNUPS
  value: {{ $o.allowSignups | quote }}
- name: CODER_OIDC_SIGN_IN_TEXT
  value: {{ $o.signInText | quote }}
{{- with $o.emailDomain }}
- name: CODER_OIDC_EMAIL_DOMAIN
  value: {{ . | quote }}
{{- end }}
{{- with $o.groupField }}
- name: CODER_OIDC_GROUP_FIELD
  value: {{ . | quote }}
{{- end }}
{{- with $o.iconUrl }}
- name: CODER_OIDC_ICON_URL
  value: {{ . | quote }}
{{- end }}
{{- if $o.disablePasswordAuth }}
- name: CODER_DISABLE_PASSWORD_AUTH
  value: "true"
{{- end }}
{{- end }}
{{- end }}

{{/* GitLab (self-managed) as external auth provider 0; id matches the templates. */}}
{{- define "coder.env.gitlab" -}}
{{- $g := .Values.coder.gitlab }}
{{- if $g.enabled }}
{{- $url := trimSuffix "/" $g.url }}
- name: CODER_EXTERNAL_AUTH_0_ID
  value: {{ $g.id | quote }}
- name: CODER_EXTERNAL_AUTH_0_TYPE
  value: gitlab
- name: CODER_EXTERNAL_AUTH_0_CLIENT_ID
  value: {{ include "coder.gitlabClientId" . | quote }}
{{- if ne .Values.vault.mode "agent" }}
- name: CODER_EXTERNAL_AUTH_0_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "coder.gitlabSecretName" . }}
      key: {{ $g.secretKey }}
{{- end }}
- name: CODER_EXTERNAL_AUTH_0_AUTH_URL
  value: {{ printf "%s/oauth/authorize" $url | quote }}
- name: CODER_EXTERNAL_AUTH_0_TOKEN_URL
  value: {{ printf "%s/oauth/token" $url | quote }}
- name: CODER_EXTERNAL_AUTH_0_VALIDATE_URL
  value: {{ printf "%s/oauth/token/info" $url | quote }}
- name: CODER_EXTERNAL_AUTH_0_REVOKE_URL
  value: {{ printf "%s/oauth/revoke" $url | quote }}
# Anchored like Coder's own defaults: HTTPS, ssh:// and scp-style (git@host:group/repo) remotes
# of this host only, never a URL that merely contains it.
- name: CODER_EXTERNAL_AUTH_0_REGEX
  value: {{ printf "^(https?://|ssh://)?([^@/]+@)?%s(:[0-9]+)?([/:].*)?$" (regexQuoteMeta (regexReplaceAll ":[0-9]+$" (regexReplaceAll "^[a-z]+://" $url "") "")) | quote }}
- name: CODER_EXTERNAL_AUTH_0_DISPLAY_NAME
  value: {{ $g.displayName | quote }}
{{- with $g.scopes }}
# Coder splits this variable on spaces (CODER_OIDC_SCOPES, a string array, on commas).
- name: CODER_EXTERNAL_AUTH_0_SCOPES
  value: {{ splitList " " (replace "," " " .) | compact | join " " | quote }}
{{- end }}
{{- end }}
{{- end }}
