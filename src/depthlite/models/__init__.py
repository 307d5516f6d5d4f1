"""Networks and model-file tools.

``midas_small``, ``checkpoint``, ``synthetic`` and ``convert`` need the ``torch`` extra;
``quantize`` needs only ONNX Runtime and ``onnx`` (extra ``quantize``).
"""
