"""The ``tune`` stage: Optuna (TPE sampler, median pruning of poor trials) over the teacher's
widths, depth, learning rate and weight decay, then over the distillation temperature of the
student, on the device-resident training and validation matrices (no copy between trials).
The best values replace the config's for the stages after it and are saved as
``best_config.toml`` in the run folder."""

from __future__ import annotations

import copy
import os
import time

from kernelflow.workflow import config as C
from kernelflow.workflow.stages import Ctx, Skipped, distill_model, train_model


def _direction(ctx: Ctx) -> str:
    return "maximize" if ctx.table.task == "classification" else "minimize"  # accuracy / val mse


def stage_tune(ctx: Ctx) -> dict:
    try:
        import optuna
    except ImportError:
        raise Skipped("optuna is not installed (pip install 'kernelflow[workflow]')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg, tc = ctx.cfg, ctx.cfg.tune
    t_end = time.perf_counter() + tc.timeout_s if tc.timeout_s > 0 else None

    def report_cb(trial):
        def cb(hist, model):
            v = hist.val_metric[-1]
            trial.report(v, len(hist.val_metric) - 1)
            if trial.should_prune():
                raise optuna.TrialPruned()
            return False
        return cb

    def teacher_objective(trial):
        mc = copy.deepcopy(cfg.teacher)
        depth = trial.suggest_int("depth", 1, tc.max_depth)
        mc.hidden = [trial.suggest_categorical(f"width_{i}", tc.widths) for i in range(depth)]
        mc.lr = trial.suggest_float("lr", 3e-4, 1e-2, log=True)
        mc.weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        _, hist = train_model(ctx, mc, cfg.seed + trial.number, f"tune teacher #{trial.number}",
                              callbacks=[report_cb(trial)], epochs=tc.epochs)
        return hist.best_metric

    def timeout():
        return None if t_end is None else max(0.0, t_end - time.perf_counter())

    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    st = optuna.create_study(direction=_direction(ctx), sampler=sampler, pruner=pruner)
    n_teacher = max(1, tc.trials - max(1, tc.trials // 4)) if cfg.student.enabled else tc.trials
    st.optimize(teacher_objective, n_trials=n_teacher, timeout=timeout())
    best = st.best_trial.params
    cfg.teacher.hidden = [best[f"width_{i}"] for i in range(best["depth"])]
    cfg.teacher.lr, cfg.teacher.weight_decay = best["lr"], best["weight_decay"]
    out = {"teacher_trials": len(st.trials), "teacher_pruned": sum(t.state.name == "PRUNED" for t in st.trials),
           "teacher_best": {"value": st.best_value, **best}}

    if cfg.student.enabled:
        # the temperature needs a teacher: the best configuration's, trained for the tuning epochs
        teacher, _ = train_model(ctx, cfg.teacher, cfg.seed, "tune: best teacher", epochs=tc.epochs)

        def temp_objective(trial):
            T = trial.suggest_categorical("temperature", tc.temperatures)
            _, hist = distill_model(ctx, teacher, cfg.student, cfg.seed + 1, f"tune T={T}",
                                    callbacks=[report_cb(trial)], epochs=tc.epochs, temperature=T)
            return hist.best_metric

        st2 = optuna.create_study(direction=_direction(ctx), sampler=optuna.samplers.TPESampler(seed=cfg.seed + 1),
                                  pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
        st2.optimize(temp_objective, n_trials=max(1, min(tc.trials // 4, len(tc.temperatures))), timeout=timeout())
        cfg.student.temperature = float(st2.best_trial.params["temperature"])
        out.update(student_trials=len(st2.trials), student_best={"value": st2.best_value, **st2.best_trial.params})
    path = os.path.join(ctx.run_dir, "best_config.toml")
    best_cfg = copy.deepcopy(cfg)
    best_cfg.tune.enabled = False
    with open(path, "w", encoding="utf-8") as f:
        f.write(C.config_to_toml(best_cfg))
    out["best_config"] = path
    out["trials"] = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
                     for t in st.trials]
    return out
