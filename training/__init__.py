"""Reproducing coala-embed's weights: corpus, training, evaluation. A map of training/.

Each module directly in training/ is a command of README (`python -m training.NAME`), a few lines that
call the `main` of the module named in its docstring; the code lives in four sub-packages, one idea each:

    training/trainer/     prepared patches -> trained network -> checkpoint (the library layer)
        config.py         TrainConfig: every training setting and its default; unknown keys are errors
        data.py           the data contract: prepared folders (meta.json, .npy) and the paper's HDF5 files
        augment.py        mixing, band limiting, second views, shifted and lead crops
        losses.py         the COALA objective (+ the audio-audio term)
        network.py        the network a config describes (coala_embed.model), warm start
        optim.py          optimiser and learning-rate schedule
        machine.py        CPU name, glibc's large-block heap
        loop.py           the training loop, resume, logs (`training.train`)
        export.py         a run -> a coala-embed checkpoint with provenance (`training.export`)
        soup.py           the mean of fine-tunes of one start (`training.soup`)
        tag_head.py       a checkpoint's classifier of sound tags on its embedding (`training.tag_head`)
    training/corpus/      building the corpus and its patches (`training.corpus`, `.decontaminate`,
                          `.prepare`); its own map is in its __init__.py
    training/evaluation/  scoring checkpoints (`training.evaluate`, `.zeroshot`, `.paired`)
        datasets.py       labelled sets (labels.csv or class folders), defaults, $COALA_EVAL_DATA
        extractors.py     checkpoint / random-weight / MFCC extractors and their cache identities
        features.py       the MFCC anchor, descriptor statistics, CCA similarity
        cache.py          the embedding cache and `extract`
        protocol.py       the paper's protocol: StandardScaler + MLP, grouped stratified folds x seeds
        report.py         results.md table, accuracy figure, t-SNE map, progress log
        run.py            one evaluation run and its command line
        zeroshot.py       nearest class by tag embeddings, no training
        paired.py         fold-by-fold differences between extractors of one run
    training/scripts/     one-off experiments and device logistics (`training.anchor_ablation`,
                          `.benchmark_train`, `.benchmark_decontaminate`, `.pack`, `.device_train`)

Imports go one way: scripts -> evaluation, corpus, trainer -> coala_embed's public modules. Nothing in
trainer/ imports corpus/ or evaluation/ (`import training.train` loads no corpus code), and corpus/
and evaluation/ import of trainer/ at most the data contract.

Where to add
  * a corpus source: a row of training/sources.csv; a tagger for it in corpus/sourcetags.py (TAGGERS, or
    LABELLERS for a held-out set); a new kind of source (not Debian, GitHub, espeak, soundfont) in
    corpus/sources.py `obtain`, its fetching in a module beside debian.py and github.py.
  * a model variant: the network in coala_embed/model.py (shared with inference), its name in
    TrainConfig.CHOICES, its loss terms in trainer/losses.py; a training setting: one field of
    TrainConfig (with its default and a comment), read where it acts.
  * an evaluation set: a folder with labels.csv, given with --data or in $COALA_EVAL_DATA (nothing to code);
    a new extractor: a function in evaluation/extractors.py returning an Extractor, chosen in
    build_extractors.
  * an experiment: a module in scripts/ and, if README or EXPERIMENTS.md runs it, a thin
    training/NAME.py entry point.
"""
