#!/bin/sh
echo "A=$A B=$B"
