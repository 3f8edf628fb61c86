"""Networks trained here: the end-to-end ResNet-50, dense heads, the six small networks and CGANs."""
