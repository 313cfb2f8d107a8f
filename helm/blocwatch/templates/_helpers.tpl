{{/*
Names and labels. Components: collector, processor, alerter, topics (the hook Job).
*/}}

{{- define "blocwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-blocwatch", or the release name alone when it already contains the chart name. */}}
{{- define "blocwatch.fullname" -}}
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

{{- define "blocwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one component's resources; call with (dict "root" $ "component" "collector"). */}}
{{- define "blocwatch.componentName" -}}
{{- printf "%s-%s" (include "blocwatch.fullname" .root | trunc 52 | trimSuffix "-") .component }}
{{- end }}

{{/* Selector labels: stable across upgrades, so never add anything here that can change. */}}
{{- define "blocwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "blocwatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* Labels of every resource; call with (dict "root" $ "component" "collector") or "" component. */}}
{{- define "blocwatch.labels" -}}
helm.sh/chart: {{ include "blocwatch.chart" .root }}
{{ include "blocwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: blocwatch
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "blocwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "blocwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image of a component: its own override wins over the global `image`. */}}
{{- define "blocwatch.image" -}}
{{- $global := .root.Values.image }}
{{- $own := .service.image | default dict }}
{{- $repository := $own.repository | default $global.repository }}
{{- $tag := $own.tag | default $global.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}

{{- define "blocwatch.imagePullPolicy" -}}
{{- $own := .service.image | default dict }}
{{- $own.pullPolicy | default .root.Values.image.pullPolicy }}
{{- end }}

{{/* Kafka bootstrap servers; Strimzi's bootstrap Service when left empty with strimzi.enabled. */}}
{{- define "blocwatch.bootstrapServers" -}}
{{- if .Values.kafka.bootstrapServers }}
{{- .Values.kafka.bootstrapServers }}
{{- else if .Values.strimzi.enabled }}
{{- $tls := has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}
{{- printf "%s-kafka-bootstrap:%s" .Values.strimzi.clusterName (ternary "9093" "9092" $tls) }}
{{- else }}
{{- fail "kafka.bootstrapServers is required (host:port of your Kafka brokers), or set strimzi.enabled with strimzi.clusterName" }}
{{- end }}
{{- end }}

{{/*
Every topic name, in the order of blocwatch.core.topics.TOPICS (a test keeps them equal), as a
YAML list. Partitions and configs are the same for all topics, as in `blocwatch topics create`.
*/}}
{{- define "blocwatch.topicNames" -}}
{{- $prefix := .Values.topics.prefix }}
{{- range list "news.raw" "news.tagged" "events.alliance" "events.escalation" "alerts" "alerts.actions" "news.raw.dlq" "news.tagged.dlq" "alerts.dlq" }}
- {{ printf "%s%s" $prefix . | quote }}
{{- end }}
{{- end }}

{{/* Where files live inside the containers. */}}
{{- define "blocwatch.dataDir" -}}/var/lib/blocwatch{{- end }}
{{- define "blocwatch.configDir" -}}/etc/blocwatch/config{{- end }}
{{- define "blocwatch.kafkaCaDir" -}}/etc/blocwatch/kafka-ca{{- end }}
{{- define "blocwatch.kafkaClientDir" -}}/etc/blocwatch/kafka-client{{- end }}

{{/*
Kafka and topic settings every container gets, as a dict of plain values (BLOCWATCH_* names are
exactly the settings fields of blocwatch.core.settings.KafkaSettings).
*/}}
{{- define "blocwatch.kafkaEnv" -}}
{{- $v := .Values }}
{{- $env := dict
  "BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS" (include "blocwatch.bootstrapServers" .)
  "BLOCWATCH_KAFKA_CLIENT_ID" $v.kafka.clientId
  "BLOCWATCH_KAFKA_SECURITY_PROTOCOL" $v.kafka.securityProtocol
  "BLOCWATCH_KAFKA_ENABLE_IDEMPOTENCE" (toString $v.kafka.enableIdempotence)
  "BLOCWATCH_TOPIC_PREFIX" $v.topics.prefix
  "BLOCWATCH_TOPIC_PARTITIONS" (toString (int64 $v.topics.partitions))
  "BLOCWATCH_TOPIC_REPLICATION_FACTOR" (toString (int64 $v.topics.replicationFactor))
  "BLOCWATCH_TOPIC_RETENTION_MS" (toString (int64 $v.topics.retentionMs))
  "BLOCWATCH_LOG_LEVEL" $v.logLevel
}}
{{- with $v.kafka.sasl.mechanism }}
{{- $_ := set $env "BLOCWATCH_KAFKA_SASL_MECHANISM" . }}
{{- end }}
{{- with $v.kafka.sasl.username }}
{{- $_ := set $env "BLOCWATCH_KAFKA_SASL_USERNAME" . }}
{{- end }}
{{- if $v.kafka.tls.caSecret }}
{{- $_ := set $env "BLOCWATCH_KAFKA_SSL_CAFILE" (printf "%s/ca.crt" (include "blocwatch.kafkaCaDir" .)) }}
{{- end }}
{{- if $v.kafka.tls.clientSecret }}
{{- $_ := set $env "BLOCWATCH_KAFKA_SSL_CERTFILE" (printf "%s/tls.crt" (include "blocwatch.kafkaClientDir" .)) }}
{{- $_ := set $env "BLOCWATCH_KAFKA_SSL_KEYFILE" (printf "%s/tls.key" (include "blocwatch.kafkaClientDir" .)) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
The env list of a container: (dict "root" $ "plain" <dict> "service" <values of the service>).
Plain values come from the chart, then the service's `env` map overrides them (one entry per
name, sorted); the Kafka password, `refs` (secretKeyRef, fieldRef entries) and the
service's `extraEnv` follow verbatim.
*/}}
{{- define "blocwatch.envList" -}}
{{- $root := .root }}
{{- $plain := .plain }}
{{- if .service }}
{{- range $name, $value := .service.env }}
{{- /* YAML numbers arrive as float64: print whole numbers without an exponent. */}}
{{- if and (kindIs "float64" $value) (eq $value (float64 (int64 $value))) }}
{{- $value = int64 $value }}
{{- end }}
{{- $_ := set $plain $name (toString $value) }}
{{- end }}
{{- end }}
{{- range $name, $value := $plain }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with $root.Values.kafka.sasl.existingSecret }}
- name: BLOCWATCH_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $root.Values.kafka.sasl.passwordKey }}
{{- end }}
{{- with .refs }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- with .service }}
{{- range .extraEnv }}
{{- if hasKey $plain .name }}
{{- fail (printf "%s.extraEnv repeats %s, which the chart sets: override it in %s.env instead" $.component .name $.component) }}
{{- end }}
{{- end }}
{{- with .extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Volumes for Kafka TLS material, mounted read-only where the *_SSL_* settings point. */}}
{{- define "blocwatch.kafkaVolumes" -}}
{{- with .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.kafka.tls.caKey }}
        path: ca.crt
{{- end }}
{{- with .Values.kafka.tls.clientSecret }}
- name: kafka-client
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.kafka.tls.certKey }}
        path: tls.crt
      - key: {{ $.Values.kafka.tls.keyKey }}
        path: tls.key
{{- end }}
{{- end }}

{{- define "blocwatch.kafkaVolumeMounts" -}}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: {{ include "blocwatch.kafkaCaDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.clientSecret }}
- name: kafka-client
  mountPath: {{ include "blocwatch.kafkaClientDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The pod template shared by the three services. Call with (dict "root" $ "component" "collector"
"service" .Values.collector "command" "collect" "plain" <dict of env> "refs" <EnvVar list>
"volumes" <yaml list> "mounts" <yaml list> "annotations" <dict>). The data dir is an emptyDir,
or the claim "claimName", or left out when "persistentData" (a StatefulSet volumeClaimTemplate).
*/}}
{{- define "blocwatch.podTemplate" -}}
{{- $root := .root }}
{{- $service := .service -}}
metadata:
  labels:
    {{- include "blocwatch.labels" . | nindent 4 }}
  {{- $annotations := merge (dict) (.annotations | default dict) ($service.podAnnotations | default dict) }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "blocwatch.serviceAccountName" $root }}
  automountServiceAccountToken: false
  # Service links would inject BLOCWATCH_<SERVICE>_* variables that look like settings.
  enableServiceLinks: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: 30
  {{- with .initContainers }}
  initContainers:
    {{- . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "blocwatch.image" . | quote }}
      imagePullPolicy: {{ include "blocwatch.imagePullPolicy" . }}
      command: ["blocwatch"]
      args: [{{ .command | quote }}]
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      ports:
        - name: metrics
          containerPort: {{ $service.metricsPort }}
          protocol: TCP
        {{- with .extraPorts }}
        {{- . | nindent 8 }}
        {{- end }}
      env:
        {{- include "blocwatch.envList" . | trim | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        {{- toYaml $root.Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        {{- toYaml $root.Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml $service.resources | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: {{ include "blocwatch.dataDir" $root }}
        {{- with .mounts }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with include "blocwatch.kafkaVolumeMounts" $root | trim }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- if not .persistentData }}
    - name: data
      {{- if .claimName }}
      persistentVolumeClaim:
        claimName: {{ .claimName }}
      {{- else }}
      emptyDir:
        sizeLimit: {{ $service.dataDirSizeLimit }}
      {{- end }}
    {{- end }}
    {{- with .volumes }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with include "blocwatch.kafkaVolumes" $root | trim }}
    {{- . | nindent 4 }}
    {{- end }}
  {{- with $service.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $service.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $service.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Settings every long-running service gets besides Kafka's: its metrics address and port. */}}
{{- define "blocwatch.serviceEnv" -}}
{{- $env := include "blocwatch.kafkaEnv" .root | fromYaml }}
{{- $_ := set $env "BLOCWATCH_METRICS_HOST" "0.0.0.0" }}
{{- $_ := set $env (printf "BLOCWATCH_%s_METRICS_PORT" (upper .component)) (toString (int64 .service.metricsPort)) }}
{{- if has .component (list "collector" "processor" "alerter") }}
{{- $_ := set $env (printf "BLOCWATCH_%s_DATA_DIR" (upper .component)) (include "blocwatch.dataDir" .root) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* Feeds and rules file contents: from values, else the chart's copy of the shipped file. */}}
{{- define "blocwatch.feedsContent" -}}
{{- .Values.collector.feeds.content | default (.Files.Get "files/config/feeds.yaml") }}
{{- end }}

{{- define "blocwatch.rulesContent" -}}
{{- .Values.alerter.rules.content | default (.Files.Get "files/config/rules.yaml") }}
{{- end }}

{{/*
The feeds file split into collector.replicas shard files ("feeds-<i>.yaml": content), as YAML.
Enabled feeds are dealt round-robin in name order, so every shard gets at least one feed and the
split only depends on the feed names; each shard file keeps the file's `defaults`.
*/}}
{{- define "blocwatch.feedShards" -}}
{{- $doc := include "blocwatch.feedsContent" . | fromYaml }}
{{- if hasKey $doc "Error" }}
{{- fail (printf "the feeds file is not valid YAML: %s" $doc.Error) }}
{{- end }}
{{- $count := int .Values.collector.replicas }}
{{- $byName := dict }}
{{- range $feed := $doc.feeds | default list }}
{{- if hasKey $byName (toString $feed.name) }}
{{- fail (printf "the feeds file names feed %q twice" (toString $feed.name)) }}
{{- end }}
{{- if ne (toString $feed.enabled) "false" }}
{{- $_ := set $byName (toString $feed.name) $feed }}
{{- end }}
{{- end }}
{{- $names := keys $byName | sortAlpha }}
{{- if lt (len $names) $count }}
{{- fail (printf "collector.replicas (%d) exceeds the enabled feeds (%d): a shard would have no feed" $count (len $names)) }}
{{- end }}
{{- $shards := dict }}
{{- range $position, $name := $names }}
{{- $key := printf "feeds-%d.yaml" (mod $position $count) }}
{{- $_ := set $shards $key (append (get $shards $key | default list) (get $byName $name)) }}
{{- end }}
{{- range $key, $feeds := $shards }}
{{- $_ := set $shards $key (toYaml (dict "defaults" ($doc.defaults | default dict) "feeds" $feeds)) }}
{{- end }}
{{- toYaml $shards }}
{{- end }}

{{/*
The init container of a sharded collector pod: copies feeds-<ordinal>.yaml (the ordinal is the
suffix of the StatefulSet pod's hostname) to where BLOCWATCH_COLLECTOR_FEEDS_FILE points.
*/}}
{{- define "blocwatch.shardInit" -}}
- name: feeds-shard
  image: {{ include "blocwatch.image" . | quote }}
  imagePullPolicy: {{ include "blocwatch.imagePullPolicy" . }}
  command:
    - sh
    - -c
    - |
      set -eu
      host="${HOSTNAME:-$(cat /etc/hostname)}"
      cp "/etc/blocwatch/shards/feeds-${host##*-}.yaml" "{{ include "blocwatch.configDir" .root }}/feeds.yaml"
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  volumeMounts:
    - name: shards
      mountPath: /etc/blocwatch/shards
      readOnly: true
    - name: config
      mountPath: {{ include "blocwatch.configDir" .root }}
{{- end }}
