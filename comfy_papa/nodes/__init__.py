"""Node declarations: thin V3 schemas that delegate to comfy_papa.host and comfy_papa.core."""
