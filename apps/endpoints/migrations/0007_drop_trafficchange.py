"""TrafficChange is gone: the traffic history is the audit trail's `traffic.set` entries.

accounts' 0002 copied the old rows into the audit trail, so it must run before the table is dropped.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("endpoints", "0006_environment_conda_text"),
        ("accounts", "0002_roles_for_existing_users"),
    ]

    operations = [
        migrations.DeleteModel(
            name="TrafficChange",
        ),
    ]
