"""Questions for the organisation target (data files): what no program can see on a host.

One file per question, ``OR-NN.yaml``, with the same shape of bilingual texts as ``checks/meta``;
``_texts.yaml`` holds the sentences every organisation finding shares (unanswered, attested, expired).
"""
