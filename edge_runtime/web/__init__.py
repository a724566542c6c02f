"""The HTTP front doors (TF Serving REST, Open Inference Protocol), metrics and probes."""
