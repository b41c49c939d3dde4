from coherex.cli import run

run()
