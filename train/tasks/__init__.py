"""tinyml.train.tasks: tasks trained with the generic Trainer beyond plain language modelling.

    arithmetic.py      Teaching Arithmetic (Lee et al. 2023): n-digit addition (subtraction,
                       multiplication) in the plain, reverse, simplified- and detailed-scratchpad
                       formats, balanced sampling over digit counts and carries, a held-out split
                       that never overlaps training, the task's character tokenizer
    completion.py      prompt -> completion batches (loss on the completion only) and greedy
                       exact-match evaluation (tinyml.models.generate, KV cache)
    arithmetic_run.py  a small GPT trained on an arithmetic format with the Trainer, scored by
                       held-out exact match: the job behind `tinyml arithmetic`
    mix.py             the Mix Distillation data mixer: long and short traces of the same problems
                       at a long:short ratio (1:4 default), with the arithmetic traces
    sandbox.py         run_python: model-written Python in a separate, resource-limited process
                       with restricted builtins and an import allow-list; a result, never a crash
    tinygsm.py         TinyGSM at toy scale: templated grade-school word problems (10 templates,
                       paraphrased wordings) with Python solutions, gold answers from the sandbox,
                       splits held out by number range, wording, instance or template
    tinygsm_model.py   the generator's side: a digit-splitting BPE tokenizer, question -> solution
                       pairs, N sampled solutions per problem (KV cache), execution in the sandbox
    tinygsm_verifier.py  the verifier: the GPT trunk with a scalar head, token-level BCE on the
                       generator's own samples labelled by execution (Cobbe et al. 2021)
    tinygsm_numtok.py  the verifier's input with every number below a bound as one token of its own
    tinygsm_select.py  best-of-N: first sample, majority vote over executed answers, the verifier's
                       pick and the oracle, averaged over random subsets of the samples; the number
                       rule (a reference selector: every literal of the code is in the question)
    tinygsm_budget.py  the generator's step budget chosen by validation greedy accuracy nearest a target
    tinygsm_samples.py the executed samples (verifier data, held-out samples), saved for --resume
    tinygsm_report.py  the accuracy-against-N table, its plot and held-out examples
    tinygsm_run.py     the end-to-end job behind `tinyml tinygsm`: problems, tokenizer, generator,
                       verifier, held-out accuracy against N (table, plot, tinygsm.json)

examples/arithmetic/ runs the sample-efficiency sweep and the Mix Distillation comparison;
examples/tinygsm/ the TinyGSM pipeline.
"""
