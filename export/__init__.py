"""edgemask-export: the face detectors (YuNet from ONNX, res10 from Caffe) and the Keras mask classifier as
verified TFLite/ONNX files.

Needs the ``export`` extra (TensorFlow, tf2onnx, onnx); the runtime package never imports this one.
"""
