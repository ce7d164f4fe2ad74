"""Card statistics for operators (the SQL report views are in sql/migrations/0005)."""

# The column a group is named by; only these names ever reach the SQL text.
GROUPS = {"batch": "coalesce(b.name, '(no batch)')", "category": "c.category",
          "status": "c.status"}

STATS = """
SELECT {group} AS "group", c.currency,
       count(*) AS issued,
       count(c.activated_at) AS activated,
       count(c.first_used_at) AS used,
       coalesce(sum(c.balance) FILTER (WHERE c.status <> 'cancelled'
                 AND (c.expires_at IS NULL OR c.expires_at > now())), 0) AS remaining_value,
       coalesce(sum(x.expired), 0) AS expired_value
  FROM kondge.card c
  LEFT JOIN kondge.batch b ON b.id = c.batch_id
  LEFT JOIN (SELECT card_id, -sum(amount) AS expired FROM kondge.ledger_entry
              WHERE kind = 'expiry' GROUP BY card_id) x ON x.card_id = c.id
 WHERE %(batch)s::text IS NULL OR b.name = %(batch)s
 GROUP BY 1, 2 ORDER BY 1, 2
"""
STATS_COLUMNS = ["group", "currency", "issued", "activated", "used", "remaining_value",
                 "expired_value"]


def card_stats(cur, by: str = "batch", batch: str | None = None) -> list[dict]:
    """Issued, activated, used, remaining and expired value per batch, category or status."""
    cur.execute(STATS.format(group=GROUPS[by]), {"batch": batch})
    return cur.fetchall()
