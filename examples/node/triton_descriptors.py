"""Write Triton's gRPC service definition as a FileDescriptorSet for faces.js --descriptors.

The descriptors come from the tritonclient wheel (compiled from Triton's published
grpc_service.proto and model_config.proto, tag r24.10 for tritonclient 2.51), so a machine
with facegate's Python environment needs no copy of the .proto files:

    python examples/node/triton_descriptors.py triton.desc
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from tritonclient.grpc import model_config_pb2, service_pb2


def descriptor_set() -> bytes:
    """model_config.proto, then grpc_service.proto (which imports it), serialised."""
    files = descriptor_pb2.FileDescriptorSet()
    for module in (model_config_pb2, service_pb2):
        module.DESCRIPTOR.CopyToProto(files.file.add())
    return files.SerializeToString()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python triton_descriptors.py OUTPUT")
    Path(sys.argv[1]).write_bytes(descriptor_set())
