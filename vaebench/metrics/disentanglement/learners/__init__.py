"""The learners of the disentanglement scores, each solving a scikit-learn model's problem:

- :mod:`.svm1d`: one-feature linear SVMs (``LinearSVC``), SAP's learner;
- :mod:`.boosting`: gradient-boosted trees (``GradientBoostingClassifier``), DCI's learner,
  with the exact splitter of :mod:`.exact_tree` or the binned one of :mod:`.histogram_tree`.
"""
