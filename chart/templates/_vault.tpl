{{/* The Vault secrets coderd needs: name, KV sub-path, Secret key, env var. */}}
{{- define "coder.vaultSecrets" -}}
{{- $c := .Values.coder }}
{{- $items := list (dict "name" "database" "key" $c.database.secretKey "env" "CODER_PG_CONNECTION_URL" "secret" (include "coder.databaseSecretName" .)) }}
{{- if $c.oidc.enabled }}
{{- $items = append $items (dict "name" "oidc" "key" $c.oidc.secretKey "env" "CODER_OIDC_CLIENT_SECRET" "secret" (include "coder.oidcSecretName" .)) }}
{{- end }}
{{- if $c.gitlab.enabled }}
{{- $items = append $items (dict "name" "gitlab" "key" $c.gitlab.secretKey "env" "CODER_EXTERNAL_AUTH_0_CLIENT_SECRET" "secret" (include "coder.gitlabSecretName" .)) }}
{{- end }}
{{- toJson $items }}
{{- end }}

{{/* Vault Agent Injector annotations: one pre-populated env file sourced before coderd starts. */}}
{{- define "coder.vaultAgentAnnotations" -}}
{{- $v := .Values.vault }}
{{- $tmpl := "" }}
{{- range (include "coder.vaultSecrets" . | fromJsonArray) }}
{{- $path := printf "%s/data/%s/%s" $v.kvMount $v.path .name }}
{{- $line := printf `{{ with secret %q }}export %s='{{ index .Data.data %q | replaceAll "'" "'\\''" }}'{{ end }}` $path .env .key }}
{{- $tmpl = printf "%s%s\n" $tmpl $line }}
{{- end }}
vault.hashicorp.com/agent-inject: "true"
vault.hashicorp.com/agent-pre-populate-only: "true"
vault.hashicorp.com/role: {{ $v.role | quote }}
vault.hashicorp.com/auth-path: {{ printf "auth/%s" $v.authMount | quote }}
vault.hashicorp.com/agent-service-account-token-volume-name: vault-token
vault.hashicorp.com/agent-inject-secret-coder.env: {{ printf "%s/data/%s/database" $v.kvMount $v.path | quote }}
vault.hashicorp.com/agent-inject-template-coder.env: {{ $tmpl | quote }}
{{- with $v.agent.annotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
