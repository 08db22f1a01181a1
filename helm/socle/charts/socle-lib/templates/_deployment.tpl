{{/*
Deployment of a service: uvicorn serving the service's ASGI app on port 8000 (the image's
entrypoint), separate startup, liveness and readiness probes, a read-only root filesystem
with a writable /tmp. Takes the dict (root, service).
*/}}
{{- define "socle-lib.deployment" -}}
{{- $root := .root }}
{{- include "socle-lib.validate" . }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "socle-lib.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .service }}
spec:
  {{- if not $root.Values.autoscaling.enabled }}
  replicas: {{ $root.Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ $root.Values.revisionHistoryLimit }}
  selector:
    matchLabels:
      {{- include "socle-lib.workloadSelectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "socle-lib.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .service }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $root.Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "socle-lib.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountToken }}
      {{- /* Kubernetes would otherwise inject SOCLE_<SERVICE>_SERVICE_HOST and friends for the
      release's own Services, which the strict settings refuse as unknown keys. */}}
      enableServiceLinks: false
      {{- with include "socle-lib.imagePullSecrets" $root | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      containers:
        - name: {{ .service }}
          image: {{ include "socle-lib.image" $root | quote }}
          imagePullPolicy: {{ include "socle-lib.imagePullPolicy" $root }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          ports:
            - name: http
              containerPort: 8000
              protocol: TCP
          env:
            {{- include "socle-lib.env" (dict "root" $root "service" .service "migration" false) | trim | nindent 12 }}
          startupProbe:
            httpGet:
              path: /health/live
              port: http
            {{- toYaml $root.Values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /health/live
              port: http
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /health/ready
              port: http
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $root.Values.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
