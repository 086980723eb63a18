"""Template rollouts on a Coder deployment: the verbs that join Coder's pieces.

One module per verb, each taking ``Settings`` and a ``CoderAPI`` and handing on a
result the CLI prints (text, or ``--format json``):

* ``impact``: what a candidate version would replace or destroy in each existing workspace;
* ``canary``: builds named users' (or fresh test) workspaces on a candidate, waits for healthy agents;
* ``log``: the rollout log kept in the versions' messages on the server (every promotion);
* ``rollback``: re-promote the version that was active before;
* ``outdated``: workspaces not on the active version, optionally updated;
* ``diff``: the candidate's files and variables against the active version's;
* ``archive``: old unused versions archived.
"""
