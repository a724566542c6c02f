"""Wire and artefact contracts of KubeEdge Edge Service, generated from ``proto/``."""
