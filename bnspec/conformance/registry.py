"""Every conformance check, in report order (grouped by spec area)."""

from __future__ import annotations

from .check import Check
from .checks import (
    ChannelLast,
    EvalNoUpdate,
    EvalOutput,
    EvalUntracked,
    GradAffineOff,
    GradEval,
    GradTrain,
    GradUntrackedEval,
    RunningCounter,
    RunningCumulative,
    RunningMomentum,
    RunningUntracked,
    TrainAffineOff,
    TrainBatchStatsOnly,
    TrainOutput,
)
from .checks_more import (
    ArgMomentumRange,
    ArgNegativeEps,
    ArgNonFloating,
    ArgOneValue,
    ArgShape,
    DtypeHalf,
    DtypeHalfParams,
    DtypeOutput,
    EmptyBatch,
    InputsUnmutated,
    MultiStep,
    SpecialConstant,
    SpecialNonFinite,
)
from .checks_sync import (
    SyncEmptyBatch,
    SyncEmptyShard,
    SyncEqualShards,
    SyncMergeByCount,
    SyncOneValue,
    SyncReplicasAgree,
    SyncUnequalShards,
)

CHECKS: tuple[Check, ...] = (
    TrainOutput(), TrainAffineOff(), TrainBatchStatsOnly(),
    ChannelLast(),
    RunningMomentum(), RunningCumulative(), RunningCounter(), RunningUntracked(), EvalNoUpdate(),
    EvalOutput(), EvalUntracked(),
    GradTrain(), GradEval(), GradUntrackedEval(), GradAffineOff(),
    DtypeOutput(), DtypeHalf(), DtypeHalfParams(),
    SpecialNonFinite(), SpecialConstant(),
    ArgOneValue(), ArgShape(), ArgNonFloating(), ArgNegativeEps(), ArgMomentumRange(),
    InputsUnmutated(), EmptyBatch(),
    MultiStep(),
    SyncEqualShards(), SyncUnequalShards(), SyncEmptyShard(), SyncMergeByCount(), SyncReplicasAgree(), SyncOneValue(),
    SyncEmptyBatch(),
)

AREAS: tuple[str, ...] = tuple(dict.fromkeys(c.area for c in CHECKS))
