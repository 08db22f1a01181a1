"""The isolation evidence report: it runs the checks an auditor would otherwise take on trust."""
