"""Part 2's peer: a per-message server written the way most edge demos are.

paho's threaded loop, one message at a time: decode, normalise, invoke LiteRT at batch 1,
encode, publish. TCP_NODELAY is set (without it, delayed ACKs dominate p99). Run it as
``python -m bench.naive_peer --broker-port P --model FILE``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from ai_edge_litert.interpreter import Interpreter
from paho.mqtt.enums import CallbackAPIVersion

from edgeinfer.v1 import inference_pb2 as pb

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def serve(broker_port: int, model: str, threads: int, root: str) -> None:
    """Serve until SIGTERM."""
    interpreter = Interpreter(model_path=model, num_threads=threads)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="naive-peer")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)

    def nodelay(_c: Any, _u: Any, sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        c.subscribe(f"{root}/+/request", qos=1)

    def on_message(c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        request = pb.InferenceRequest.FromString(bytes(message.payload))
        tensor = request.faces[0].pixels
        pixels = np.frombuffer(tensor.data, np.uint8).reshape(1, 64, 64, 1)
        interpreter.set_tensor(input_index, pixels.astype(np.float32) / 127.5 - 1.0)
        interpreter.invoke()
        probabilities = interpreter.get_tensor(output_index)[0]
        best = int(np.argmax(probabilities))
        response = pb.InferenceResponse(
            request_id=request.request_id,
            device_id=request.device_id,
            status=pb.STATUS_OK,
            results=[
                pb.FaceResult(
                    label=LABELS[best],
                    class_index=best,
                    confidence=float(probabilities[best]),
                    probabilities=probabilities.tolist(),
                )
            ],
        )
        c.publish(f"{root}/{request.device_id}/result", response.SerializeToString(), qos=1)

    client.on_socket_open = nodelay
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", broker_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker-port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--topic-root", default="emotion/v1")
    args = parser.parse_args()
    serve(args.broker_port, args.model, args.threads, args.topic_root)


if __name__ == "__main__":
    main()
