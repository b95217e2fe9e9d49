"""One trace of a model, read by every analysis: the model's forward (or a training step) run once
on *meta* tensors under a ``TorchDispatchMode``. Every ATen operation is recorded (functional calls
inside ``forward`` -- ``F.relu``, ``x + y``, ``torch.cat`` -- as well as modules), attributed to the
innermost module call it happened in, and linked to the operations that produced its inputs (the
data flow that the receptive-field and memory analyses follow through branches and merges).

* ``graph``: the types of a trace (``Trace``, ``TrainingTrace``, ``Value``, ``Op``, ``Call``);
* ``recorder``: the dispatch mode and the ``Tracer`` whose hooks build the graph;
* ``guards``: the model left as found, and the models the trace refuses;
* ``inputs``: the forward's arguments made from an ``archlab.spec.Inputs``;
* ``run``: the one runner (``trace``, ``trace_training``) and ``build``;
* ``rules`` and ``shapes``: the per-op table mechanism and the output shapes of common ops.
"""

from archlab.trace.graph import CONST, INPUT, PARAM, Call, Op, Trace, TrainingTrace, Uncalled, Value
from archlab.trace.recorder import OP_ATTRS, Recorder, Tracer
from archlab.trace.run import Built, build, saved_for_backward, trace, trace_built, trace_model, trace_training

__all__ = ["CONST", "INPUT", "PARAM", "Built", "Call", "OP_ATTRS", "Op", "Recorder", "Trace", "Tracer",
           "TrainingTrace", "Uncalled", "Value", "build", "saved_for_backward", "trace", "trace_built",
           "trace_model", "trace_training"]
