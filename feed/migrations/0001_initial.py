import django.db.models.functions.datetime
import objects.models
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Sequencer',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('last_seq', models.BigIntegerField(default=0)),
                ('pruned_through', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='Change',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('seq', models.BigIntegerField(null=True, unique=True)),
                ('key', objects.models.BytewiseTextField()),
                ('op', models.CharField(choices=[('create', 'create'), ('update', 'update'), ('delete', 'delete')], max_length=6)),
                ('item_id', models.BigIntegerField()),
                ('created', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), db_index=True)),
            ],
            options={
                'indexes': [models.Index(condition=models.Q(('seq__isnull', True)), fields=['id'], name='change_unnumbered')],
            },
        ),
    ]
