"""Version 1 of the edgeinfer contract (generated modules ``*_pb2``)."""
