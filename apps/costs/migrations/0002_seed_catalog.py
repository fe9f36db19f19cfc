"""Once seeded the catalog (sizes and prices) into costs.InstanceType; the catalog lives in apps.endpoints
now, seeded by endpoints' 0003_instancetype and priced by costs' 0004_instanceprice, so a new database
gets it there. A database that ran this before keeps its rows: 0004 copies them over.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("costs", "0001_initial")]
    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]
