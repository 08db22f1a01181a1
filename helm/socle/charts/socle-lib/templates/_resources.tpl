{{/*
The service's Service, ServiceAccount, Ingress, HorizontalPodAutoscaler,
PodDisruptionBudget and ServiceMonitor. Each takes the dict (root, service).
*/}}

{{- define "socle-lib.service" -}}
{{- $root := .root }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "socle-lib.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .service }}
  {{- with $root.Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $root.Values.service.type }}
  ports:
    - name: http
      port: {{ $root.Values.service.port }}
      targetPort: http
      protocol: TCP
  selector:
    {{- include "socle-lib.workloadSelectorLabels" . | nindent 4 }}
{{- end }}

{{- define "socle-lib.serviceAccount" -}}
{{- $root := .root }}
{{- if $root.Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "socle-lib.serviceAccountName" $root }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .service }}
  {{- with $root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ $root.Values.serviceAccount.automountToken }}
{{- end }}
{{- end }}

{{- define "socle-lib.ingress" -}}
{{- $root := .root }}
{{- if $root.Values.ingress.enabled }}
{{- $fullname := include "socle-lib.fullname" $root }}
{{- $port := $root.Values.service.port }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .service }}
  {{- with $root.Values.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $root.Values.ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with $root.Values.ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    {{- range $root.Values.ingress.hosts }}
    - host: {{ .host | quote }}
      http:
        paths:
          {{- range .paths }}
          - path: {{ .path }}
            pathType: {{ .pathType }}
            backend:
              service:
                name: {{ $fullname }}
                port:
                  number: {{ $port }}
          {{- end }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "socle-lib.hpa" -}}
{{- $root := .root }}
{{- if $root.Values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "socle-lib.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .service }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "socle-lib.fullname" $root }}
  minReplicas: {{ $root.Values.autoscaling.minReplicas }}
  maxReplicas: {{ $root.Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $root.Values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

{{- define "socle-lib.pdb" -}}
{{- $root := .root }}
{{- if $root.Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "socle-lib.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .service }}
spec:
  maxUnavailable: {{ $root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "socle-lib.workloadSelectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "socle-lib.serviceMonitor" -}}
{{- $root := .root }}
{{- if $root.Values.metrics.serviceMonitor.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "socle-lib.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .service }}
    {{- with $root.Values.metrics.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "socle-lib.workloadSelectorLabels" . | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ $root.Values.metrics.serviceMonitor.interval }}
      scrapeTimeout: {{ $root.Values.metrics.serviceMonitor.scrapeTimeout }}
{{- end }}
{{- end }}
