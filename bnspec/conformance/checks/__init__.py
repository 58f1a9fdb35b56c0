"""Every conformance check, one module per section of ``spec/batchnorm.md``, listed here in report order.

| module | spec section | clauses |
|---|---|---|
| ``training`` | 1, 2: layout, training forward | BN-LAYOUT-*, BN-TRAIN-* |
| ``running`` | 3: running statistics | BN-RUN-* |
| ``eval`` | 4: eval forward | BN-EVAL-* |
| ``gradients`` | 5: gradients | BN-GRAD-* |
| ``higher_order`` | 5: gradients beyond the first order (forward mode, double backward, any order) | BN-GRAD-4..7, BN-PREC-8 |
| ``dtypes`` | 6: data types | BN-DTYPE-* |
| ``special`` | 7: special values | BN-SPECIAL-* |
| ``invalid`` | 8: invalid use | BN-ARG-* |
| ``inputs`` | 9: inputs, empty batches | BN-IO-1, BN-EMPTY-1 |
| ``synchronized`` | 10: synchronized batch norm | BN-SYNC-* |
| ``scenarios`` | across sections: several steps then eval | BN-RUN-*, BN-EVAL-1 |
| ``quality`` | precision.md, quality tier (SHOULD): large, constant and mirrored cases | BN-QUAL-* |

A check's docstring is the sentence a report prints; its ``clauses`` the IDs it cites.
"""

from __future__ import annotations

from ..check import Check
from .dtypes import DtypeHalf, DtypeHalfParams, DtypeOutput
from .eval import EvalOutput, EvalUntracked
from .gradients import GradAffineOff, GradEval, GradTrain, GradUntrackedEval
from .higher_order import (
    Grad2Eval,
    Grad2Train,
    JvpEval,
    JvpOverJvp,
    JvpOverVjp,
    JvpTrain,
    Order3ReverseRightOrRaised,
    Order3RightOrRaised,
)
from .inputs import EmptyBatch, InputsUnmutated
from .invalid import ArgMomentumRange, ArgNegativeEps, ArgNonFloating, ArgOneValue, ArgShape
from .quality import QualConstant, QualReductions, QualSignSymmetry
from .running import EvalNoUpdate, RunningCounter, RunningCumulative, RunningMomentum, RunningUntracked
from .scenarios import MultiStep
from .special import SpecialConstant, SpecialNonFinite
from .synchronized import (
    SyncEmptyBatch,
    SyncEmptyShard,
    SyncEqualShards,
    SyncMergeByCount,
    SyncOneValue,
    SyncReplicasAgree,
    SyncUnequalShards,
)
from .training import ChannelLast, TrainAffineOff, TrainBatchStatsOnly, TrainOutput

CHECKS: tuple[Check, ...] = (
    TrainOutput(), TrainAffineOff(), TrainBatchStatsOnly(),
    ChannelLast(),
    RunningMomentum(), RunningCumulative(), RunningCounter(), RunningUntracked(), EvalNoUpdate(),
    EvalOutput(), EvalUntracked(),
    GradTrain(), GradEval(), GradUntrackedEval(), GradAffineOff(),
    JvpTrain(), JvpEval(), Grad2Train(), Grad2Eval(), JvpOverVjp(), JvpOverJvp(), Order3RightOrRaised(),
    Order3ReverseRightOrRaised(),
    DtypeOutput(), DtypeHalf(), DtypeHalfParams(),
    SpecialNonFinite(), SpecialConstant(),
    ArgOneValue(), ArgShape(), ArgNonFloating(), ArgNegativeEps(), ArgMomentumRange(),
    InputsUnmutated(), EmptyBatch(),
    MultiStep(),
    SyncEqualShards(), SyncUnequalShards(), SyncEmptyShard(), SyncMergeByCount(), SyncReplicasAgree(), SyncOneValue(),
    SyncEmptyBatch(),
    QualReductions(), QualConstant(), QualSignSymmetry(),
)

AREAS: tuple[str, ...] = tuple(dict.fromkeys(c.area for c in CHECKS))

# Where each area's clauses live in spec/batchnorm.md, for reports that group checks by section.
SECTIONS: dict[str, str] = {
    "LAYOUT": "section 1 (layout)", "TRAIN": "section 2 (training forward)", "RUN": "section 3 (running statistics)",
    "EVAL": "section 4 (eval forward)", "GRAD": "section 5 (gradients)", "DTYPE": "section 6 (data types)",
    "SPECIAL": "section 7 (special values)", "ARG": "section 8 (invalid use)", "IO": "section 9 (inputs)",
    "EMPTY": "section 9 (empty batches)", "SYNC": "section 10 (synchronized)", "SCENARIO": "the scenarios",
    "GRAD2": "section 5 (higher-order gradients)", "QUAL": "the quality tier (spec/precision.md)",
}
