"""poisonguard_review: a person approves or rejects one blocked batch; only an approved batch is promoted.

The DAG ships with the package (``poisonguard.airflow.review_dag``); this file is all a dags
folder needs for it. The example DAGs ask for it with ``poisoning_gate(review_dag_id=REVIEW_DAG_ID)``.
See docs/airflow.md, "Review a blocked batch".
"""

from poisonguard.airflow import review_dag

dag = review_dag()
